"""Reductions -> IR reduce_* ops (ReduceL1/L2/SumSquare/LogSum/LogSumExp composed).

Axes are an attribute until ReduceSum-13 and the others' opset 18, an optional input after;
the input form adds noop_with_empty_axes. Empty axes otherwise reduce over every axis.
"""

from __future__ import annotations

from ..registry import converter
from .common import axes_of, ints, reshape


def _simple(ir_op):
    def build(ctx, x, axes, keepdims):
        return ctx.emit(ir_op, [x], axes=axes, keepdims=keepdims)
    return build


def _square_then(then):
    def build(ctx, x, axes, keepdims):
        total = ctx.emit("reduce_sum", [ctx.emit("mul", [x, x])], axes=axes, keepdims=keepdims)
        return ctx.emit(then, [total]) if then else total
    return build


def _l1(ctx, x, axes, keepdims):
    return ctx.emit("reduce_sum", [ctx.emit("abs", [x])], axes=axes, keepdims=keepdims)


def _log_sum(ctx, x, axes, keepdims):
    return ctx.emit("log", [ctx.emit("reduce_sum", [x], axes=axes, keepdims=keepdims)])


def _log_sum_exp(ctx, x, axes, keepdims):
    """max + log(sum(exp(x - max))), stable for large inputs."""
    peak = ctx.emit("reduce_max", [x], axes=axes, keepdims=True)
    shifted = ctx.emit("exp", [ctx.emit("sub", [x, peak])])
    total = ctx.emit("log", [ctx.emit("reduce_sum", [shifted], axes=axes, keepdims=True)])
    y = ctx.emit("add", [total, peak])
    if keepdims:
        return y
    return reshape(ctx, y, tuple(d for i, d in enumerate(x.shape) if i not in axes))


#: ONNX op -> (builder, opset whose axes become an input)
_REDUCTIONS = {
    "ReduceSum": (_simple("reduce_sum"), 13),
    "ReduceMean": (_simple("reduce_mean"), 18),
    "ReduceMax": (_simple("reduce_max"), 18),
    "ReduceMin": (_simple("reduce_min"), 18),
    "ReduceProd": (_simple("reduce_prod"), 18),
    "ReduceL1": (_l1, 18),
    "ReduceL2": (_square_then("sqrt"), 18),
    "ReduceSumSquare": (_square_then(None), 18),
    "ReduceLogSum": (_log_sum, 18),
    "ReduceLogSumExp": (_log_sum_exp, 18),
}


def _reduce(ctx, build, x, axes, keepdims, noop_with_empty_axes):
    if not axes:
        if noop_with_empty_axes:
            return x
        axes = range(x.type.rank)
    return build(ctx, x, axes_of(ctx, axes, x.type.rank), bool(keepdims))


def _family(onnx_op, build, input_since):
    @converter(onnx_op, since=1)
    def axes_attribute(ctx, x, axes=None, keepdims=1):
        return _reduce(ctx, build, x, ints(axes) if axes is not None else (), keepdims, 0)

    @converter(onnx_op, since=input_since)
    def axes_input(ctx, x, axes=None, keepdims=1, noop_with_empty_axes=0):
        values = ints(ctx.value_of(axes, "axes")) if axes is not None else ()
        return _reduce(ctx, build, x, values, keepdims, noop_with_empty_axes)


for _onnx_op, (_build, _input_since) in _REDUCTIONS.items():
    _family(_onnx_op, _build, _input_since)
