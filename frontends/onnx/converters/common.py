"""Helpers the converters share: axis normalization, scalars, legacy broadcasting, windows."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ....compiler.dtypes import DType
from ....compiler.ir import Value


def axis_of(ctx, axis: int, rank: int, what: str = "axis") -> int:
    """`axis` made non-negative for a tensor of `rank`, or a clear failure."""
    axis = int(axis)
    if not -rank <= axis < rank:
        ctx.fail(f"{what} {axis} is out of range for a rank-{rank} tensor")
    return axis + rank if axis < 0 else axis


def axes_of(ctx, axes: Sequence[int], rank: int, what: str = "axes") -> tuple[int, ...]:
    """Distinct non-negative sorted axes, or a clear failure on duplicates."""
    normalized = [axis_of(ctx, a, rank, what) for a in axes]
    if len(set(normalized)) != len(normalized):
        ctx.fail(f"{what} {list(axes)} name an axis twice")
    return tuple(sorted(normalized))


def ints(values) -> tuple[int, ...]:
    """A plain tuple of Python ints from a list or an integer array."""
    return tuple(int(v) for v in np.asarray(values).reshape(-1))


def scalar(ctx, value, like: Value) -> Value:
    """A 0-d constant of `like`'s dtype."""
    return ctx.const(np.array(value, dtype=like.dtype.numpy))


def python_scalar(array: np.ndarray):
    """A 1-element array as a Python int, float or bool (for IR attributes)."""
    item = np.asarray(array).reshape(-1)[0].item()
    return item


def reshape(ctx, x: Value, shape: Sequence[int]) -> Value:
    shape = tuple(int(d) for d in shape)
    if shape == x.shape:
        return x
    return ctx.emit("reshape", [x], shape=shape)


def onnx_dtype(ctx, code, what: str = "dtype") -> DType:
    """A Kiln DType from an ONNX TensorProto code (or, in Cast-1, its name)."""
    import onnx

    if isinstance(code, str):
        try:
            code = onnx.TensorProto.DataType.Value(code.upper())
        except ValueError:
            ctx.fail(f"{what} '{code}' is not an ONNX data type")
    try:
        return DType.from_onnx(int(code))
    except ValueError:
        name = onnx.TensorProto.DataType.Name(int(code)) if int(code) in \
            onnx.TensorProto.DataType.values() else str(code)
        ctx.fail(f"{what} {name} is not supported",
                 f"supported: {', '.join(d.name for d in DType)}")


def constant_array(ctx, array: np.ndarray, what: str = "constant") -> Value:
    """A graph constant from an ONNX tensor value, failing clearly on unsupported dtypes."""
    array = np.asarray(array)
    try:
        DType.from_numpy(array.dtype)
    except (KeyError, TypeError):
        ctx.fail(f"{what} of dtype {array.dtype} is not supported",
                 f"supported: {', '.join(d.name for d in DType)}")
    return ctx.const(array)


def legacy_broadcast(ctx, a: Value, b: Value, broadcast: int, axis) -> Value:
    """B reshaped so numpy broadcasting gives the opset-1..6 `broadcast`/`axis` meaning.

    With broadcast=0 the shapes must match; with broadcast=1 B's shape matches a contiguous
    run of A's dims starting at `axis` (by default, A's trailing dims).
    """
    if not broadcast:
        if a.shape != b.shape:
            ctx.fail(f"shapes {a.shape} and {b.shape} differ and broadcast=0",
                     "set broadcast=1 or export with opset 7 or newer")
        return b
    if b.type.rank > a.type.rank:
        ctx.fail(f"B of rank {b.type.rank} cannot broadcast to A of rank {a.type.rank}")
    if axis is None:
        return b
    start = axis_of(ctx, axis, max(a.type.rank, 1))
    trailing = a.type.rank - start - b.type.rank
    if trailing < 0:
        ctx.fail(f"B of shape {b.shape} does not fit A of shape {a.shape} at axis {axis}")
    if any(bd not in (1, ad) for bd, ad in zip(b.shape, a.shape[start:])):
        ctx.fail(f"B of shape {b.shape} does not match A of shape {a.shape} at axis {axis}")
    return reshape(ctx, b, b.shape + (1,) * trailing)


def window_pads(ctx, auto_pad: str, sizes: Sequence[int], kernel: Sequence[int],
                strides: Sequence[int], dilations: Sequence[int],
                pads: Sequence[int] | None) -> list[tuple[int, int]]:
    """Per spatial axis (begin, end) padding, resolving auto_pad as the ONNX spec says."""
    rank = len(sizes)
    if auto_pad in ("NOTSET", ""):
        pads = list(pads) if pads is not None else [0] * (2 * rank)
        if len(pads) != 2 * rank:
            ctx.fail(f"pads has {len(pads)} values, expected {2 * rank}")
        if any(p < 0 for p in pads):
            ctx.fail(f"negative pads {pads} are not supported")
        return [(int(pads[i]), int(pads[i + rank])) for i in range(rank)]
    if auto_pad == "VALID":
        return [(0, 0)] * rank
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        ctx.fail(f"auto_pad '{auto_pad}' is not a valid value",
                 "use NOTSET, VALID, SAME_UPPER or SAME_LOWER")
    result = []
    for size, k, s, d in zip(sizes, kernel, strides, dilations):
        out = math.ceil(size / s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, large = total // 2, total - total // 2
        result.append((small, large) if auto_pad == "SAME_UPPER" else (large, small))
    return result


def spatial_attrs(ctx, x: Value, kernel, strides, pads, dilations, auto_pad: str,
                  what: str) -> dict:
    """Normalized 2-D window attributes (kernel, strides, pads, dilations) for 1-D or 2-D
    windows over `x` [N, C, *spatial]; 1-D windows get a leading unit axis."""
    rank = x.type.rank - 2
    if rank == 3:
        ctx.fail(f"3-D {what} is not supported", "Kiln supports 1-D and 2-D windows")
    if rank not in (1, 2):
        ctx.fail(f"{what} needs an input of rank 3 or 4, got shape {x.shape}")
    kernel = ints(kernel)
    if len(kernel) != rank:
        ctx.fail(f"kernel_shape {list(kernel)} does not fit the input's {rank} spatial dims")
    strides = ints(strides) if strides is not None else (1,) * rank     # absent, not empty
    dilations = ints(dilations) if dilations is not None else (1,) * rank
    if len(strides) != rank or len(dilations) != rank:
        ctx.fail(f"strides {list(strides)} / dilations {list(dilations)} do not fit the "
                 f"input's {rank} spatial dims")
    if any(s < 1 for s in strides) or any(d < 1 for d in dilations):
        ctx.fail("strides and dilations must be positive")
    begin_end = window_pads(ctx, auto_pad, x.shape[2:], kernel, strides, dilations, pads)
    if rank == 1:
        kernel, strides, dilations = (1,) + kernel, (1,) + strides, (1,) + dilations
        begin_end = [(0, 0)] + begin_end
    (top, bottom), (left, right) = begin_end
    return dict(kernel=kernel, strides=strides, pads=(top, left, bottom, right),
                dilations=dilations)


def lift_1d(ctx, x: Value) -> Value:
    """[N, C, L] -> [N, C, 1, L] so 1-D windows run as 2-D ones; rank-4 input is kept."""
    if x.type.rank == 3:
        return reshape(ctx, x, x.shape[:2] + (1,) + x.shape[2:])
    return x


def drop_1d(ctx, y: Value, lifted: bool) -> Value:
    """Undo lift_1d on a result."""
    if lifted:
        return reshape(ctx, y, y.shape[:2] + y.shape[3:])
    return y


def requested_outputs(ctx) -> list[int]:
    """Indices of the current node's outputs that the model actually names."""
    return [i for i, name in enumerate(ctx.node.output) if name]
