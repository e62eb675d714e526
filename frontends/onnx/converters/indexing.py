"""Indexed reads/writes, scans and selection: GatherElements, ScatterElements (and the old
Scatter), ScatterND, CumSum, CumProd, TopK; and ops composed from IR ops with constant masks
or index ramps: Trilu, OneHot, ArgMax/ArgMin, Hardmax."""

from __future__ import annotations

import numpy as np

from ....compiler.dtypes import DType
from ..registry import converter
from .common import axis_of, python_scalar, requested_outputs, reshape, scalar


def _check_indices(ctx, indices) -> None:
    if indices.dtype not in (DType.int32, DType.int64):
        ctx.fail(f"indices must be int32 or int64, got {indices.dtype.name}")


@converter("GatherElements", since=11)
def gather_elements(ctx, data, indices, axis=0):
    _check_indices(ctx, indices)
    axis = axis_of(ctx, axis, data.type.rank)
    if indices.type.rank != data.type.rank:
        ctx.fail(f"indices of rank {indices.type.rank} do not match data of rank "
                 f"{data.type.rank}")
    return ctx.emit("gather_elements", [data, indices], axis=axis)


def _scatter_elements(ctx, data, indices, updates, axis, reduction):
    _check_indices(ctx, indices)
    if reduction not in ("none", "add", "mul", "max", "min"):
        ctx.fail(f"reduction '{reduction}' is not defined")
    if indices.shape != updates.shape or indices.type.rank != data.type.rank:
        ctx.fail(f"indices {indices.shape} and updates {updates.shape} must have one shape "
                 f"and data's rank {data.type.rank}")
    axis = axis_of(ctx, axis, data.type.rank)
    return ctx.emit("scatter_elements", [data, indices, updates], axis=axis,
                    reduction=reduction)


@converter("Scatter", since=9)
def scatter(ctx, data, indices, updates, axis=0):
    """Deprecated alias of ScatterElements."""
    return _scatter_elements(ctx, data, indices, updates, axis, "none")


@converter("ScatterElements", since=11)
def scatter_elements(ctx, data, indices, updates, axis=0, reduction="none"):
    return _scatter_elements(ctx, data, indices, updates, axis, reduction)


@converter("ScatterND", since=11)
def scatter_nd(ctx, data, indices, updates, reduction="none"):
    _check_indices(ctx, indices)
    if reduction not in ("none", "add", "mul", "max", "min"):
        ctx.fail(f"reduction '{reduction}' is not defined")
    depth = indices.shape[-1] if indices.type.rank else 0
    if not indices.type.rank or depth > data.type.rank or \
            updates.shape != indices.shape[:-1] + data.shape[depth:]:
        ctx.fail(f"updates {updates.shape} do not fit indices {indices.shape} and data "
                 f"{data.shape}")
    return ctx.emit("scatter_nd", [data, indices, updates], reduction=reduction)


def _scan(ctx, op, x, axis, exclusive, reverse):
    axis = axis_of(ctx, python_scalar(ctx.value_of(axis, "the scan axis")), x.type.rank)
    return ctx.emit(op, [x], axis=axis, exclusive=int(exclusive), reverse=int(reverse))


@converter("CumSum", since=11)
def cumsum(ctx, x, axis, exclusive=0, reverse=0):
    return _scan(ctx, "cumsum", x, axis, exclusive, reverse)


@converter("CumProd", since=26)
def cumprod(ctx, x, axis, exclusive=0, reverse=0):
    return _scan(ctx, "cumprod", x, axis, exclusive, reverse)


def _topk(ctx, x, k, axis, largest):
    axis = axis_of(ctx, axis, x.type.rank)
    if not 0 <= k <= x.shape[axis]:
        ctx.fail(f"k={k} is out of range for an axis of {x.shape[axis]}")
    attrs = dict(axis=axis, k=int(k), largest=int(largest))
    wanted = requested_outputs(ctx)
    values = ctx.emit("topk_values", [x], **attrs) if 0 in wanted else None
    indices = ctx.emit("topk_indices", [x], **attrs) if 1 in wanted else None
    return [values, indices]


@converter("TopK", since=1)
def topk_attribute(ctx, x, axis=-1, k=None):
    if k is None:
        ctx.fail("TopK has no k attribute")
    return _topk(ctx, x, int(k), axis, 1)


@converter("TopK", since=10)
def topk(ctx, x, k, axis=-1, largest=1, sorted=1):
    """Outputs are always sorted (sorted=0 leaves the order to the implementation)."""
    return _topk(ctx, x, int(python_scalar(ctx.value_of(k, "TopK's k"))), axis, largest)


@converter("Trilu", since=14)
def trilu(ctx, x, k=None, upper=1):
    """x where the constant mask of the (upper or lower) triangle holds, else 0."""
    if x.type.rank < 2:
        ctx.fail(f"Trilu needs rank 2 or more, got {x.shape}")
    diagonal = int(python_scalar(ctx.value_of(k, "Trilu's k"))) if k is not None else 0
    rows, cols = x.shape[-2:]
    r, c = np.indices((rows, cols))
    mask = (c - r >= diagonal) if upper else (c - r <= diagonal)
    return ctx.emit("where", [ctx.const(mask), x, scalar(ctx, 0, x)])


@converter("OneHot", since=9)
def one_hot(ctx, indices, depth, values, axis=-1):
    """values[1] where indices (wrapped, along a new `axis`) equal the position, else
    values[0]; depth must be known at compile time."""
    depth = int(python_scalar(ctx.value_of(depth, "OneHot's depth")))
    rank = indices.type.rank + 1
    axis = axis_of(ctx, axis, rank)
    ramp_shape = [1] * rank
    ramp_shape[axis] = depth
    ramp = ctx.const(np.arange(depth, dtype=np.int64).reshape(ramp_shape))
    idx = indices if indices.dtype is DType.int64 else ctx.emit("cast", [indices],
                                                               to=DType.int64)
    if not idx.dtype.is_int:
        ctx.fail("OneHot indices must be numeric")
    idx = ctx.emit("where", [ctx.emit("less", [idx, scalar(ctx, 0, idx)]),
                             ctx.emit("add", [idx, scalar(ctx, depth, idx)]), idx])
    idx = reshape(ctx, idx, indices.shape[:axis] + (1,) + indices.shape[axis:])
    hot = ctx.emit("equal", [idx, ramp])
    off = ctx.emit("slice", [values], starts=(0,), ends=(1,), steps=(1,))
    on = ctx.emit("slice", [values], starts=(1,), ends=(2,), steps=(1,))
    return ctx.emit("where", [hot, reshape(ctx, on, ()), reshape(ctx, off, ())])


def _arg(ctx, x, axis, keepdims, select_last_index, largest):
    """The index of the first (or last) extreme element along `axis`, as int64:
    reduce the positions where x equals its extreme."""
    axis = axis_of(ctx, axis, x.type.rank)
    extreme = ctx.emit("reduce_max" if largest else "reduce_min", [x], axes=(axis,),
                       keepdims=True)
    ramp_shape = [1] * x.type.rank
    ramp_shape[axis] = x.shape[axis]
    ramp = ctx.const(np.arange(x.shape[axis], dtype=np.int64).reshape(ramp_shape))
    hit = ctx.emit("equal", [x, extreme])
    fill = scalar(ctx, -1 if select_last_index else x.shape[axis], ramp)
    positions = ctx.emit("where", [hit, ramp, fill])
    return ctx.emit("reduce_max" if select_last_index else "reduce_min", [positions],
                    axes=(axis,), keepdims=int(keepdims))


@converter("ArgMax", since=1)
def argmax(ctx, x, axis=0, keepdims=1, select_last_index=0):
    return _arg(ctx, x, axis, keepdims, select_last_index, True)


@converter("ArgMin", since=1)
def argmin(ctx, x, axis=0, keepdims=1, select_last_index=0):
    return _arg(ctx, x, axis, keepdims, select_last_index, False)


@converter("Hardmax", since=1)
def hardmax_flat(ctx, x, axis=1):
    """Opsets 1-12: over the dims from `axis` on, flattened."""
    axis = axis_of(ctx, axis, x.type.rank)
    flat = reshape(ctx, x, (int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:]))))
    return reshape(ctx, _hardmax(ctx, flat, 1), x.shape)


@converter("Hardmax", since=13)
def hardmax(ctx, x, axis=-1):
    return _hardmax(ctx, x, axis_of(ctx, axis, x.type.rank))


def _hardmax(ctx, x, axis):
    first = _arg(ctx, x, axis, 1, 0, True)
    ramp_shape = [1] * x.type.rank
    ramp_shape[axis] = x.shape[axis]
    ramp = ctx.const(np.arange(x.shape[axis], dtype=np.int64).reshape(ramp_shape))
    return ctx.emit("where", [ctx.emit("equal", [ramp, first]), scalar(ctx, 1, x),
                              scalar(ctx, 0, x)])
