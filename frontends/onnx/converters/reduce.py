"""Reductions -> IR reduce_* ops (ReduceL1/L2/SumSquare/LogSum/LogSumExp composed).

Axes are an attribute until ReduceSum-13 and the others' opset 18, an optional input after;
the input form adds noop_with_empty_axes. Empty axes otherwise reduce over every axis.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import converter
from .common import axes_of, ints, reshape


@dataclass(frozen=True)
class _Reduction:
    """An optional elementwise map, a reduction, then an optional elementwise finish.
    With noop_with_empty_axes and no axes only the map and finish apply (as ORT does)."""

    reduce: str
    before: str | None = None
    after: str | None = None

    def build(self, ctx, x, axes, keepdims):
        y = self._map(ctx, x)
        if axes is not None:
            y = ctx.emit(self.reduce, [y], axes=axes, keepdims=keepdims)
        return ctx.emit(self.after, [y]) if self.after else y

    def _map(self, ctx, x):
        if self.before == "square":
            return ctx.emit("mul", [x, x])
        return ctx.emit(self.before, [x]) if self.before else x


class _LogSumExp:
    """max + log(sum(exp(x - max))), stable for large inputs."""

    @staticmethod
    def build(ctx, x, axes, keepdims):
        if axes is None:
            return x
        peak = ctx.emit("reduce_max", [x], axes=axes, keepdims=True)
        shifted = ctx.emit("exp", [ctx.emit("sub", [x, peak])])
        total = ctx.emit("log", [ctx.emit("reduce_sum", [shifted], axes=axes, keepdims=True)])
        y = ctx.emit("add", [total, peak])
        if keepdims:
            return y
        return reshape(ctx, y, tuple(d for i, d in enumerate(x.shape) if i not in axes))


#: ONNX op -> (how it reduces, opset whose axes become an input)
_REDUCTIONS = {
    "ReduceSum": (_Reduction("reduce_sum"), 13),
    "ReduceMean": (_Reduction("reduce_mean"), 18),
    "ReduceMax": (_Reduction("reduce_max"), 18),
    "ReduceMin": (_Reduction("reduce_min"), 18),
    "ReduceProd": (_Reduction("reduce_prod"), 18),
    "ReduceL1": (_Reduction("reduce_sum", before="abs"), 18),
    "ReduceL2": (_Reduction("reduce_sum", before="square", after="sqrt"), 18),
    "ReduceSumSquare": (_Reduction("reduce_sum", before="square"), 18),
    "ReduceLogSum": (_Reduction("reduce_sum", after="log"), 18),
    "ReduceLogSumExp": (_LogSumExp(), 18),
}


def _reduce(ctx, how, x, axes, keepdims, noop_with_empty_axes):
    if not axes:
        if noop_with_empty_axes:
            return how.build(ctx, x, None, bool(keepdims))
        axes = range(x.type.rank)
    return how.build(ctx, x, axes_of(ctx, axes, x.type.rank), bool(keepdims))


def _family(onnx_op, how, input_since):
    @converter(onnx_op, since=1)
    def axes_attribute(ctx, x, axes=None, keepdims=1):
        return _reduce(ctx, how, x, ints(axes) if axes is not None else (), keepdims, 0)

    @converter(onnx_op, since=input_since)
    def axes_input(ctx, x, axes=None, keepdims=1, noop_with_empty_axes=0):
        values = ints(ctx.value_of(axes, "axes")) if axes is not None else ()
        return _reduce(ctx, how, x, values, keepdims, noop_with_empty_axes)


for _onnx_op, (_how, _input_since) in _REDUCTIONS.items():
    _family(_onnx_op, _how, _input_since)
