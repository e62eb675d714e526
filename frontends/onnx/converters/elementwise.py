"""Elementwise ONNX ops -> IR unary/binary/ternary ops: arithmetic, math, comparisons,
logic, variadic Max/Min/Sum/Mean, Where and Cast."""

from __future__ import annotations

from functools import reduce

from ..registry import converter
from .common import legacy_broadcast, onnx_dtype, scalar
from .dtype_cast import convert_to

# -- binary ops: numpy broadcasting from opset 7, `broadcast`/`axis` attributes before ----------

#: ONNX op -> (IR op, first opset, first opset with numpy broadcasting)
_BINARY = {
    "Add": ("add", 1, 7), "Sub": ("sub", 1, 7), "Mul": ("mul", 1, 7), "Div": ("div", 1, 7),
    "Pow": ("pow", 1, 7),
    "Equal": ("equal", 1, 7), "Less": ("less", 1, 7), "Greater": ("greater", 1, 7),
    "And": ("and", 1, 7), "Or": ("or", 1, 7), "Xor": ("xor", 1, 7),
    "LessOrEqual": ("less_equal", 12, 12), "GreaterOrEqual": ("greater_equal", 12, 12),
}


def _binary(onnx_op: str, ir_op: str, since: int, numpy_since: int) -> None:
    if since < numpy_since:
        @converter(onnx_op, since=since)
        def legacy(ctx, a, b, broadcast=0, axis=None, consumed_inputs=None):
            return ctx.emit(ir_op, [a, legacy_broadcast(ctx, a, b, broadcast, axis)])

    @converter(onnx_op, since=numpy_since)
    def convert(ctx, a, b):
        return ctx.emit(ir_op, [a, b])


for _onnx_op, (_ir_op, _since, _numpy_since) in _BINARY.items():
    _binary(_onnx_op, _ir_op, _since, _numpy_since)


# -- unary math ---------------------------------------------------------------------------------

#: ONNX op -> (IR op, first opset)
_UNARY = {
    "Sqrt": ("sqrt", 1), "Exp": ("exp", 1), "Log": ("log", 1), "Neg": ("neg", 1),
    "Abs": ("abs", 1), "Reciprocal": ("reciprocal", 1), "Floor": ("floor", 1),
    "Ceil": ("ceil", 1), "Not": ("not", 1), "Erf": ("erf", 9), "Sign": ("sign", 9),
    "Round": ("round", 11), "Sin": ("sin", 7), "Cos": ("cos", 7),
}


def _unary(onnx_op: str, ir_op: str, since: int) -> None:
    @converter(onnx_op, since=since)
    def convert(ctx, x, consumed_inputs=None):
        return ctx.emit(ir_op, [x])


for _onnx_op, (_ir_op, _since) in _UNARY.items():
    _unary(_onnx_op, _ir_op, _since)


@converter("IsNaN", since=9)
def is_nan(ctx, x):
    return ctx.emit("isnan", [x])


@converter("IsInf", since=10)
def is_inf(ctx, x, detect_negative=1, detect_positive=1):
    return ctx.emit("isinf", [x], detect_negative=int(detect_negative),
                    detect_positive=int(detect_positive))


# -- variadic ops: numpy broadcasting (equal shapes before opset 8, a subset of it) -------------

def _variadic(onnx_op: str, ir_op: str) -> None:
    @converter(onnx_op, since=1)
    def convert(ctx, *xs, consumed_inputs=None):
        if not xs or any(x is None for x in xs):
            ctx.fail(f"{onnx_op} needs at least one input")
        return reduce(lambda acc, x: ctx.emit(ir_op, [acc, x]), xs)


for _onnx_op, _ir_op in {"Max": "max", "Min": "min", "Sum": "add"}.items():
    _variadic(_onnx_op, _ir_op)


@converter("Mean", since=1)
def mean(ctx, *xs, consumed_inputs=None):
    if not xs or any(x is None for x in xs):
        ctx.fail("Mean needs at least one input")
    total = reduce(lambda acc, x: ctx.emit("add", [acc, x]), xs)
    if len(xs) == 1:
        return total
    return ctx.emit("div", [total, scalar(ctx, len(xs), total)])


# -- selection and conversion -------------------------------------------------------------------

@converter("Where", since=9)
def where(ctx, cond, a, b):
    return ctx.emit("where", [cond, a, b])


@converter("Cast", since=1)
def cast(ctx, x, to=None, saturate=1, round_mode="up"):
    """saturate (opset 19) and round_mode (opset 24) concern float8 targets."""
    if to is None:
        ctx.fail("Cast has no 'to' attribute")
    return convert_to(ctx, x, onnx_dtype(ctx, to, "cast target"), saturate, round_mode)


@converter("CastLike", since=15)
def cast_like(ctx, x, target, saturate=1, round_mode="up"):
    return convert_to(ctx, x, target.dtype, saturate, round_mode)
