"""Normalizations composed from IR reductions and elementwise ops: LayerNormalization with its
Mean/InvStdDev outputs, RMSNormalization, MeanVarianceNormalization, GroupNormalization,
LpNormalization and LRN. Statistics are computed in float32 for float16 inputs (stash_type)."""

from __future__ import annotations

import numpy as np

from ....compiler.dtypes import DType
from ..registry import converter
from .common import axes_of, axis_of, reshape, scalar


def _to(ctx, x, dtype: DType):
    return x if x.dtype is dtype else ctx.emit("cast", [x], to=dtype)


def _stash(ctx, x, stash_type: int):
    """x in the dtype statistics are computed in (float32 unless stash_type says double)."""
    if x.dtype is DType.float64:
        return x
    return _to(ctx, x, DType.float64 if stash_type == 11 else DType.float32)


def _inv_std(ctx, var, epsilon: float):
    """1 / sqrt(var + epsilon)."""
    shifted = ctx.emit("add", [var, scalar(ctx, epsilon, var)])
    return ctx.emit("reciprocal", [ctx.emit("sqrt", [shifted])])


def layer_norm_with_stats(ctx, x, scale, bias, axis: int, epsilon: float, stash_type: int):
    """(Y, Mean, InvStdDev) of LayerNormalization, all three as the spec defines them."""
    axis = axis_of(ctx, axis, x.type.rank)
    axes = tuple(range(axis, x.type.rank))
    xs = _stash(ctx, x, stash_type)
    mean = ctx.emit("reduce_mean", [xs], axes=axes, keepdims=True)
    centered = ctx.emit("sub", [xs, mean])
    var = ctx.emit("reduce_mean", [ctx.emit("mul", [centered, centered])], axes=axes,
                   keepdims=True)
    inv = _inv_std(ctx, var, epsilon)
    y = _to(ctx, ctx.emit("mul", [centered, inv]), x.dtype)
    y = ctx.emit("mul", [y, scale])
    if bias is not None:
        y = ctx.emit("add", [y, bias])
    return y, mean, inv


@converter("RMSNormalization", since=23)
def rms_norm(ctx, x, scale, axis=-1, epsilon=1e-5, stash_type=1):
    """x / sqrt(mean(x^2 over axes [axis, rank)) + epsilon) * scale."""
    axis = axis_of(ctx, axis, x.type.rank)
    axes = tuple(range(axis, x.type.rank))
    xs = _stash(ctx, x, stash_type)
    mean_square = ctx.emit("reduce_mean", [ctx.emit("mul", [xs, xs])], axes=axes,
                           keepdims=True)
    y = _to(ctx, ctx.emit("mul", [xs, _inv_std(ctx, mean_square, epsilon)]), x.dtype)
    return ctx.emit("mul", [y, scale])


def _mvn(ctx, x, axes):
    xs = _stash(ctx, x, 1)
    mean = ctx.emit("reduce_mean", [xs], axes=axes, keepdims=True)
    centered = ctx.emit("sub", [xs, mean])
    var = ctx.emit("reduce_mean", [ctx.emit("mul", [centered, centered])], axes=axes,
                   keepdims=True)
    return _to(ctx, ctx.emit("mul", [centered, _inv_std(ctx, var, 1e-9)]), x.dtype)


@converter("MeanVarianceNormalization", since=9)
def mean_variance_norm(ctx, x, axes=(0, 2, 3)):
    """(x - mean) / sqrt(var + 1e-9) over `axes` (ONNX's function body uses 1e-9)."""
    return _mvn(ctx, x, axes_of(ctx, axes, x.type.rank))


@converter("GroupNormalization", since=18)
def group_norm_18(ctx, x, scale, bias, epsilon=1e-5, num_groups=None):
    """Opset 18: scale and bias are per group."""
    return _group_norm(ctx, x, scale, bias, epsilon, num_groups, per_group=True, stash_type=1)


@converter("GroupNormalization", since=21)
def group_norm(ctx, x, scale, bias, epsilon=1e-5, num_groups=None, stash_type=1):
    """Opset 21: scale and bias are per channel."""
    return _group_norm(ctx, x, scale, bias, epsilon, num_groups, per_group=False,
                       stash_type=stash_type)


def _group_norm(ctx, x, scale, bias, epsilon, num_groups, per_group, stash_type):
    if num_groups is None:
        ctx.fail("GroupNormalization has no num_groups attribute")
    if x.type.rank < 2 or x.shape[1] % num_groups:
        ctx.fail(f"{x.shape[1] if x.type.rank > 1 else '?'} channels do not split into "
                 f"{num_groups} groups")
    n, c = x.shape[0], x.shape[1]
    grouped = reshape(ctx, x, (n, num_groups, int(np.prod(x.shape[1:])) // num_groups))
    xs = _stash(ctx, grouped, stash_type)
    mean = ctx.emit("reduce_mean", [xs], axes=(2,), keepdims=True)
    centered = ctx.emit("sub", [xs, mean])
    var = ctx.emit("reduce_mean", [ctx.emit("mul", [centered, centered])], axes=(2,),
                   keepdims=True)
    y = _to(ctx, ctx.emit("mul", [centered, _inv_std(ctx, var, epsilon)]), x.dtype)
    y = reshape(ctx, y, x.shape)
    channel_shape = (c,) + (1,) * (x.type.rank - 2)
    if per_group:
        scale = reshape(ctx, ctx.emit("expand", [reshape(ctx, scale, (num_groups, 1))],
                                      shape=(num_groups, c // num_groups)), (c,))
        bias = reshape(ctx, ctx.emit("expand", [reshape(ctx, bias, (num_groups, 1))],
                                     shape=(num_groups, c // num_groups)), (c,))
    y = ctx.emit("mul", [y, reshape(ctx, scale, channel_shape)])
    return ctx.emit("add", [y, reshape(ctx, bias, channel_shape)])


@converter("LpNormalization", since=1)
def lp_norm(ctx, x, axis=-1, p=2):
    """x / ||x||_p along `axis` (p is 1 or 2); 0 where the norm is 0."""
    axis = axis_of(ctx, axis, x.type.rank)
    if p == 1:
        norm = ctx.emit("reduce_sum", [ctx.emit("abs", [x])], axes=(axis,), keepdims=True)
    elif p == 2:
        norm = ctx.emit("sqrt", [ctx.emit("reduce_sum", [ctx.emit("mul", [x, x])],
                                          axes=(axis,), keepdims=True)])
    else:
        ctx.fail(f"LpNormalization with p={p} is not defined", "use p=1 or p=2")
    zero = scalar(ctx, 0, x)
    return ctx.emit("where", [ctx.emit("equal", [norm, zero]), zero, ctx.emit("div", [x, norm])])


@converter("LRN", since=1)
def lrn(ctx, x, size=None, alpha=1e-4, beta=0.75, bias=1.0):
    """x / (bias + alpha/size * sum of squares over `size` neighbouring channels)^beta."""
    if size is None or size < 1:
        ctx.fail("LRN needs a positive size attribute")
    if x.type.rank < 3:
        ctx.fail(f"LRN needs an input of rank 3 or more, got {x.shape}")
    rank, c = x.type.rank, x.shape[1]
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    square = ctx.emit("mul", [x, x])
    pads = [0] * (2 * rank)
    pads[1], pads[1 + rank] = before, after
    padded = ctx.emit("pad", [square], pads=tuple(pads), mode="constant", value=0.0)
    total = None
    for k in range(size):
        starts = tuple(k if i == 1 else 0 for i in range(rank))
        ends = tuple(k + c if i == 1 else d for i, d in enumerate(x.shape))
        part = ctx.emit("slice", [padded], starts=starts, ends=ends, steps=(1,) * rank)
        total = part if total is None else ctx.emit("add", [total, part])
    denom = ctx.emit("add", [ctx.emit("mul", [total, scalar(ctx, alpha / size, x)]),
                             scalar(ctx, bias, x)])
    return ctx.emit("div", [x, ctx.emit("pow", [denom, scalar(ctx, beta, x)])])
