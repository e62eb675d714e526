"""Signal ops whose shapes are static: the window generators (constants: their size must be
known at compile time), AffineGrid (a constant base grid times theta) and DFT (products with
constant cosine/sine matrices along the transformed axis)."""

from __future__ import annotations

import numpy as np

from ..registry import converter
from .common import axis_of, onnx_dtype, python_scalar, reshape


def _window(ctx, size, output_datatype, periodic, coefficients):
    n = int(python_scalar(ctx.value_of(size, "the window size")))
    dtype = onnx_dtype(ctx, output_datatype, "output_datatype")
    if n <= 0:
        ctx.fail(f"window size {n} must be positive")
    denominator = n if periodic else n - 1
    k = np.arange(n, dtype=np.float64) * 2 * np.pi / max(denominator, 1)
    values = sum(c * np.cos(i * k) for i, c in enumerate(coefficients))
    return ctx.const(values.astype(dtype.numpy))


@converter("HannWindow", since=17)
def hann_window(ctx, size, output_datatype=1, periodic=1):
    return _window(ctx, size, output_datatype, periodic, (0.5, -0.5))


@converter("HammingWindow", since=17)
def hamming_window(ctx, size, output_datatype=1, periodic=1):
    return _window(ctx, size, output_datatype, periodic, (25 / 46, -21 / 46))


@converter("BlackmanWindow", since=17)
def blackman_window(ctx, size, output_datatype=1, periodic=1):
    return _window(ctx, size, output_datatype, periodic, (0.42, -0.5, 0.08))


def _base_grid(sizes, align_corners: bool) -> np.ndarray:
    """Normalized coordinates of every output position, last axis (x, y[, z], 1)."""
    axes = []
    for n in sizes:
        if align_corners:
            axes.append(np.linspace(-1, 1, n) if n > 1 else np.zeros(1))
        else:
            axes.append((np.arange(n) * 2 + 1) / n - 1)
    mesh = np.meshgrid(*axes, indexing="ij")             # [D], H, W order
    coords = [m.reshape(-1) for m in reversed(mesh)]     # x first
    return np.stack(coords + [np.ones(mesh[0].size)], axis=1)


@converter("AffineGrid", since=20)
def affine_grid(ctx, theta, size, align_corners=0):
    """grid[n, *pos] = theta[n] @ (x, y[, z], 1) for every output position."""
    shape = [int(v) for v in np.asarray(ctx.value_of(size, "AffineGrid's size")).reshape(-1)]
    spatial = shape[2:]
    rank = len(spatial)
    if rank not in (2, 3) or theta.shape[1:] != (rank, rank + 1):
        ctx.fail(f"theta {theta.shape} does not fit size {shape}")
    base = _base_grid(spatial, bool(align_corners)).astype(theta.dtype.numpy)
    base_t = ctx.const(np.ascontiguousarray(base.T))                 # [rank+1, P]
    points = ctx.emit("matmul", [theta, base_t])                      # [N, rank, P]
    points = ctx.emit("transpose", [points], perm=(0, 2, 1))          # [N, P, rank]
    return reshape(ctx, points, (shape[0], *spatial, rank))


def _dft(ctx, x, dft_length, axis, inverse, onesided):
    rank = x.type.rank
    if x.shape[-1] not in (1, 2):
        ctx.fail(f"the last dim of a DFT input holds (real[, imaginary]): got {x.shape}")
    axis = axis_of(ctx, axis, rank)
    if axis == rank - 1:
        ctx.fail("the DFT axis cannot be the last (real, imaginary) axis")
    if inverse and onesided:
        from .irfft import inverse_onesided_dft
        return inverse_onesided_dft(ctx, x, dft_length, axis)
    n = x.shape[axis]
    length = int(python_scalar(ctx.value_of(dft_length, "dft_length"))) \
        if dft_length is not None else n
    moved = list(range(rank - 1))
    moved.remove(axis)
    perm = tuple(moved + [axis, rank - 1])
    y = ctx.emit("transpose", [x], perm=perm) if perm != tuple(range(rank)) else x
    if length != n:   # truncate or zero-pad the signal
        lead = y.shape[:-2]
        keep = min(length, n)
        y = ctx.emit("slice", [y], starts=(0,) * rank, ends=lead + (keep, y.shape[-1]),
                     steps=(1,) * rank)
        if length > n:
            pads = [0] * (2 * rank)
            pads[rank + rank - 2] = length - n
            y = ctx.emit("pad", [y], pads=tuple(pads), mode="constant", value=0.0)
    outputs = length // 2 + 1 if onesided else length
    k = np.arange(outputs)[:, None] * np.arange(length)[None, :]
    angle = 2 * np.pi * k / length
    sign = 1.0 if inverse else -1.0
    scale = 1.0 / length if inverse else 1.0
    dtype = x.dtype.numpy
    cos = ctx.const((np.cos(angle) * scale).T.astype(dtype))          # [length, outputs]
    sin = ctx.const((sign * np.sin(angle) * scale).T.astype(dtype))
    lead = y.shape[:-2]
    real = reshape(ctx, ctx.emit("slice", [y], starts=(0,) * rank, ends=lead + (length, 1),
                                 steps=(1,) * rank), lead + (1, length))
    parts = [ctx.emit("matmul", [real, cos]), ctx.emit("matmul", [real, sin])]
    if y.shape[-1] == 2:
        imag = reshape(ctx, ctx.emit("slice", [y], starts=(0,) * (rank - 1) + (1,),
                                     ends=lead + (length, 2), steps=(1,) * rank),
                       lead + (1, length))
        parts[0] = ctx.emit("sub", [parts[0], ctx.emit("matmul", [imag, sin])])
        parts[1] = ctx.emit("add", [parts[1], ctx.emit("matmul", [imag, cos])])
    pair = ctx.emit("concat", [reshape(ctx, p, lead + (outputs, 1)) for p in parts],
                    axis=rank - 1)
    back = tuple(int(i) for i in np.argsort(perm))
    return ctx.emit("transpose", [pair], perm=back) if back != tuple(range(rank)) else pair


@converter("DFT", since=17)
def dft_17(ctx, x, dft_length=None, axis=1, inverse=0, onesided=0):
    return _dft(ctx, x, dft_length, axis, inverse, onesided)


@converter("DFT", since=20)
def dft(ctx, x, dft_length=None, axis=None, inverse=0, onesided=0):
    """Opset 20: the axis is an optional input (default -2)."""
    axis_value = int(python_scalar(ctx.value_of(axis, "DFT's axis"))) \
        if axis is not None else -2
    return _dft(ctx, x, dft_length, axis_value, inverse, onesided)
