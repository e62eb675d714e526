"""More elementwise ONNX ops: trigonometric/hyperbolic functions, Mod, BitShift, Bitwise*,
and activations composed from IR ops (Celu, ThresholdedRelu, Shrink, Mish, Swish)."""

from __future__ import annotations

from ..registry import converter
from .common import scalar

_TRIG = {"Tan": "tan", "Asin": "asin", "Acos": "acos", "Atan": "atan", "Sinh": "sinh",
         "Cosh": "cosh", "Asinh": "asinh", "Acosh": "acosh", "Atanh": "atanh"}


def _float_only(ctx, x, op: str) -> None:
    if not x.dtype.is_float:
        ctx.fail(f"{op} is defined for float tensors, got {x.dtype.name}")


def _trig(onnx_op: str, ir_op: str) -> None:
    @converter(onnx_op, since=7 if onnx_op in ("Tan", "Asin", "Acos", "Atan") else 9)
    def convert(ctx, x):
        _float_only(ctx, x, onnx_op)
        return ctx.emit(ir_op, [x])


for _onnx_op, _ir_op in _TRIG.items():
    _trig(_onnx_op, _ir_op)


@converter("Mod", since=10)
def mod(ctx, a, b, fmod=0):
    if a.dtype.is_float and not fmod:
        ctx.fail("Mod of floats needs fmod=1 (the spec requires it)")
    return ctx.emit("mod", [a, b], fmod=int(fmod))


@converter("BitShift", since=11)
def bit_shift(ctx, a, b, direction=None):
    if direction not in ("LEFT", "RIGHT"):
        ctx.fail(f"BitShift direction must be LEFT or RIGHT, got {direction!r}")
    return ctx.emit("bit_shift", [a, b], direction=direction)


def _bitwise(onnx_op: str, ir_op: str) -> None:
    @converter(onnx_op, since=18)
    def convert(ctx, a, b):
        if not a.dtype.is_int:
            ctx.fail(f"{onnx_op} is defined for integer tensors, got {a.dtype.name}")
        return ctx.emit(ir_op, [a, b])


for _onnx_op, _ir_op in (("BitwiseAnd", "bitwise_and"), ("BitwiseOr", "bitwise_or"),
                         ("BitwiseXor", "bitwise_xor")):
    _bitwise(_onnx_op, _ir_op)


@converter("BitwiseNot", since=18)
def bitwise_not(ctx, x):
    if not x.dtype.is_int:
        ctx.fail(f"BitwiseNot is defined for integer tensors, got {x.dtype.name}")
    return ctx.emit("bitwise_not", [x])


@converter("Celu", since=12)
def celu(ctx, x, alpha=1.0):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    inner = ctx.emit("sub", [ctx.emit("exp", [ctx.emit("div", [x, scalar(ctx, alpha, x)])]),
                             scalar(ctx, 1.0, x)])
    negative = ctx.emit("min", [scalar(ctx, 0.0, x),
                                ctx.emit("mul", [inner, scalar(ctx, alpha, x)])])
    return ctx.emit("add", [ctx.emit("relu", [x]), negative])


@converter("ThresholdedRelu", since=10)
def thresholded_relu(ctx, x, alpha=1.0):
    return ctx.emit("where", [ctx.emit("greater", [x, scalar(ctx, alpha, x)]), x,
                              scalar(ctx, 0, x)])


@converter("Shrink", since=9)
def shrink(ctx, x, bias=0.0, lambd=0.5):
    """x + bias below -lambd, x - bias above lambd, 0 between."""
    low = ctx.emit("less", [x, scalar(ctx, -lambd, x)])
    high = ctx.emit("greater", [x, scalar(ctx, lambd, x)])
    above = ctx.emit("where", [high, ctx.emit("sub", [x, scalar(ctx, bias, x)]),
                               scalar(ctx, 0, x)])
    return ctx.emit("where", [low, ctx.emit("add", [x, scalar(ctx, bias, x)]), above])


@converter("Mish", since=18)
def mish(ctx, x):
    """x * tanh(softplus(x))."""
    return ctx.emit("mul", [x, ctx.emit("tanh", [ctx.emit("softplus", [x])])])


@converter("Swish", since=24)
def swish(ctx, x, alpha=1.0):
    """x * sigmoid(alpha * x)."""
    return ctx.emit("mul", [x, ctx.emit("sigmoid", [ctx.emit("mul", [x, scalar(ctx, alpha,
                                                                              x)])])])
