"""The inverse DFT of a one-sided (Hermitian half) spectrum: real signals of length n from
bins 0..n//2 (numpy's irfft), as two matmuls with compile-time cosine and sine tables."""

from __future__ import annotations

import numpy as np

from .common import axis_of, python_scalar, reshape


def inverse_onesided_dft(ctx, x, dft_length, axis: int):
    """x [..., bins, ..., 1|2] (real[, imaginary]) -> real signals [..., n, ..., 1]."""
    rank = x.type.rank
    axis = axis_of(ctx, axis, rank)
    if axis == rank - 1:
        ctx.fail("the DFT axis cannot be the last (real, imaginary) axis")
    bins = x.shape[axis]
    length = int(python_scalar(ctx.value_of(dft_length, "dft_length"))) \
        if dft_length is not None else 2 * (bins - 1)
    if length < 1:
        ctx.fail(f"an inverse one-sided DFT needs a positive length, got {length}")
    used = length // 2 + 1
    moved = [d for d in range(rank - 1) if d != axis]
    perm = tuple(moved + [axis, rank - 1])
    y = ctx.emit("transpose", [x], perm=perm) if perm != tuple(range(rank)) else x
    lead = y.shape[:-2]
    keep = min(bins, used)
    k = np.arange(keep)[:, None] * np.arange(length)[None, :]
    weight = np.where((np.arange(keep) == 0) | (2 * np.arange(keep) == length), 1.0, 2.0)
    angle = 2 * np.pi * k / length
    dtype = x.dtype.numpy
    cos = ctx.const((np.cos(angle) * weight[:, None] / length).astype(dtype))   # [keep, n]
    sin = ctx.const((-np.sin(angle) * weight[:, None] / length).astype(dtype))

    def part(index: int):
        piece = ctx.emit("slice", [y], starts=(0,) * (rank - 1) + (index,),
                         ends=lead + (keep, index + 1), steps=(1,) * rank)
        return reshape(ctx, piece, lead + (1, keep))

    signal = ctx.emit("matmul", [part(0), cos])
    if y.shape[-1] == 2:
        signal = ctx.emit("add", [signal, ctx.emit("matmul", [part(1), sin])])
    signal = reshape(ctx, signal, lead + (length, 1))
    back = tuple(int(i) for i in np.argsort(perm))
    return ctx.emit("transpose", [signal], perm=back) if back != tuple(range(rank)) else signal
