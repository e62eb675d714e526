"""Tensor ops that static shapes make simple: EyeLike (a constant), CenterCropPad (a slice
and a pad), Compress (a gather of the kept positions), LpPool and GlobalLpPool (average
pooling of |x|^p), and the data-dependent-shape ops NonZero and Unique, which Kiln folds when
their input is a constant and otherwise emits as ops whose graph outputs have a bounded dim
(compiler/ops/data_dependent.py)."""

from __future__ import annotations

import numpy as np

from ..registry import converter
from .common import axis_of, onnx_dtype, scalar
from .pool import _pool


@converter("EyeLike", since=9)
def eye_like(ctx, x, dtype=None, k=0):
    if x.type.rank != 2:
        ctx.fail(f"EyeLike needs a 2-D input, got {x.shape}")
    out = onnx_dtype(ctx, dtype, "EyeLike dtype") if dtype is not None else x.dtype
    return ctx.const(np.eye(x.shape[0], x.shape[1], k=int(k), dtype=out.numpy))


@converter("CenterCropPad", since=18)
def center_crop_pad(ctx, x, shape, axes=None):
    """Crop larger dims and zero-pad smaller ones around the center."""
    target = [int(v) for v in np.asarray(ctx.value_of(shape, "CenterCropPad's shape"))]
    rank = x.type.rank
    axes = [axis_of(ctx, a, rank) for a in (axes if axes is not None else range(rank))]
    if len(axes) != len(target):
        ctx.fail(f"shape {target} does not match axes {axes}")
    starts, ends, pads = [0] * rank, list(x.shape), [0] * (2 * rank)
    for axis, size in zip(axes, target):
        dim = x.shape[axis]
        if size < dim:
            starts[axis] = (dim - size) // 2
            ends[axis] = starts[axis] + size
        elif size > dim:
            pads[axis] = (size - dim) // 2
            pads[axis + rank] = size - dim - pads[axis]
    y = x
    if starts != [0] * rank or ends != list(x.shape):
        y = ctx.emit("slice", [y], starts=tuple(starts), ends=tuple(ends), steps=(1,) * rank)
    if any(pads):
        y = ctx.emit("pad", [y], pads=tuple(pads), mode="constant", value=0.0)
    return y


@converter("Compress", since=9)
def compress(ctx, x, condition, axis=None):
    keep = np.asarray(ctx.value_of(condition, "Compress's condition")).reshape(-1)
    if axis is None:
        flat = ctx.emit("reshape", [x], shape=(x.type.numel,))
        data, axis = flat, 0
    else:
        data, axis = x, axis_of(ctx, axis, x.type.rank)
    picked = np.nonzero(keep[:data.shape[axis]])[0].astype(np.int64)
    return ctx.emit("gather", [data, ctx.const(picked)], axis=axis)


@converter("NonZero", since=9)
def non_zero(ctx, x):
    data = ctx.value_of(x, "NonZero's input") if x.is_constant else None
    if data is None:   # a data-dependent output (compiler/ops/data_dependent.py)
        return ctx.emit("nonzero", [x])
    return ctx.const(np.array(np.nonzero(data), dtype=np.int64))


@converter("Unique", since=11)
def unique(ctx, x, axis=None, sorted=1):
    if not x.is_constant:   # data-dependent outputs (compiler/ops/data_dependent.py)
        axis = None if axis is None else axis_of(ctx, axis, x.type.rank)
        return [ctx.emit(op, [x], axis=axis, sorted=int(sorted)) for op in (
            "unique_values", "unique_indices", "unique_inverse", "unique_counts")]
    data = x.data
    values, first, inverse, counts = np.unique(data, return_index=True, return_inverse=True,
                                               return_counts=True, axis=axis)
    if not sorted:
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        values = np.take(values, order, axis=0 if axis is None else axis)
        first, counts, inverse = first[order], counts[order], rank[inverse.reshape(-1)]
    return [ctx.const(values), ctx.const(first.astype(np.int64)),
            ctx.const(inverse.reshape(-1).astype(np.int64)),
            ctx.const(counts.astype(np.int64))]


@converter("LpPool", since=2)
def lp_pool(ctx, x, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None,
            p=2, pads=None, strides=None):
    """(sum over the window of |x|^p)^(1/p): an average pool counting padding, times the
    window size."""
    if kernel_shape is None:
        ctx.fail("kernel_shape is required")
    powered = ctx.emit("pow", [ctx.emit("abs", [x]), scalar(ctx, float(p), x)])
    mean = _pool(ctx, "avg_pool2d", powered, kernel_shape, strides, pads, dilations,
                 auto_pad, "Lp pooling", ceil_mode=bool(ceil_mode), count_include_pad=True)
    total = ctx.emit("mul", [mean, scalar(ctx, float(np.prod(kernel_shape)), mean)])
    return ctx.emit("pow", [total, scalar(ctx, 1.0 / p, total)])


@converter("GlobalLpPool", since=2)
def global_lp_pool(ctx, x, p=2):
    if x.type.rank < 3:
        ctx.fail(f"GlobalLpPool needs rank 3 or more, got {x.shape}")
    powered = ctx.emit("pow", [ctx.emit("abs", [x]), scalar(ctx, float(p), x)])
    total = ctx.emit("reduce_sum", [powered], axes=tuple(range(2, x.type.rank)), keepdims=True)
    return ctx.emit("pow", [total, scalar(ctx, 1.0 / p, total)])
