"""Each elementwise IR op as a scalar kernel-IR expression: the one definition that every
fused group and every target renders."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from ...compiler.dtypes import DType
from ...compiler.ops.qdq import QUANTIZED
from .. import kernel_ir as K

ScalarFn = Callable[..., K.Expr]

SCALAR: dict[str, ScalarFn] = {}


def scalar(*names: str) -> Callable[[ScalarFn], ScalarFn]:
    def wrap(fn: ScalarFn) -> ScalarFn:
        for name in names:
            SCALAR[name] = fn
        return fn

    return wrap


def scalar_expr(op: str, args: Sequence[K.Expr], attrs: dict[str, Any], dtype: DType
                ) -> K.Expr:
    """The expression computing elementwise `op` on `args`, producing `dtype`."""
    return SCALAR[op](*args, dtype=dtype, **attrs)


def _c(value: float, like: K.Expr) -> K.Expr:
    return K.const(value, like.dtype)


def _math(name: str) -> None:
    @scalar(name)
    def fn(x: K.Expr, dtype: DType) -> K.Expr:
        return K.call(name, x)


for _name in ("exp", "log", "sqrt", "tanh", "erf", "floor", "ceil", "round", "sin", "cos",
              "abs"):
    _math(_name)


@scalar("identity")
def identity(x, dtype):
    return x


@scalar("relu")
def relu(x, dtype):
    return K.select(K.binary("<", x, _c(0, x)), _c(0, x), x)


@scalar("neg")
def neg(x, dtype):
    return K.Unary("-", x, x.dtype)


@scalar("not")
def not_(x, dtype):
    return K.Unary("!", x, DType.bool)


@scalar("reciprocal")
def reciprocal(x, dtype):
    return K.binary("/", _c(1, x), x)


@scalar("sigmoid")
def sigmoid(x, dtype):
    return K.binary("/", _c(1, x), _c(1, x) + K.call("exp", K.Unary("-", x, x.dtype)))


@scalar("softplus")
def softplus(x, dtype):
    return K.call("log1p", K.call("exp", x))


@scalar("sign")
def sign(x, dtype):
    zero = _c(0, x)
    return K.select(K.binary(">", x, zero), _c(1, x),
                    K.select(K.binary("<", x, zero), _c(-1, x), zero))


@scalar("clip")
def clip(x, dtype, min=None, max=None):
    y = x
    if min is not None:
        y = K.select(K.binary("<", y, _c(min, x)), _c(min, x), y)
    if max is not None:
        y = K.select(K.binary(">", y, _c(max, x)), _c(max, x), y)
    return y


@scalar("leaky_relu")
def leaky_relu(x, dtype, alpha=0.01):
    return K.select(K.binary("<", x, _c(0, x)), x * _c(alpha, x), x)


@scalar("elu")
def elu(x, dtype, alpha=1.0):
    return K.select(K.binary("<", x, _c(0, x)), _c(alpha, x) * (K.call("exp", x) - _c(1, x)), x)


@scalar("hard_sigmoid")
def hard_sigmoid(x, dtype, alpha=0.2, beta=0.5):
    return clip(x * _c(alpha, x) + _c(beta, x), dtype, 0.0, 1.0)


@scalar("hard_swish")
def hard_swish(x, dtype):
    return x * hard_sigmoid(x, dtype, 1 / 6, 0.5)


@scalar("swish")
def swish(x, dtype, alpha=1.0):
    scaled = x if alpha == 1.0 else x * _c(alpha, x)
    return K.binary("/", x, _c(1, x) + K.call("exp", K.Unary("-", scaled, x.dtype)))


@scalar("gelu")
def gelu(x, dtype, approximate="none"):
    half = _c(0.5, x)
    if approximate == "tanh":
        inner = _c(math.sqrt(2 / math.pi), x) * (x + _c(0.044715, x) * x * x * x)
        return half * x * (_c(1, x) + K.call("tanh", inner))
    return half * x * (_c(1, x) + K.call("erf", x * _c(1 / math.sqrt(2), x)))


@scalar("isnan")
def isnan(x, dtype):
    return K.binary("!=", x, x)


@scalar("isinf")
def isinf(x, dtype, detect_negative=1, detect_positive=1):
    result = K.const(False, DType.bool)
    if detect_positive:
        result = K.binary("==", x, _c(math.inf, x))
    if detect_negative:
        negative = K.binary("==", x, _c(-math.inf, x))
        result = K.binary("||", result, negative) if detect_positive else negative
    return result


@scalar("cast")
def cast(x, dtype, to):
    if to is DType.bool:
        return K.binary("!=", x, K.const(0, x.dtype))
    return K.cast(x, to)


#: E8M0's rounding modes as kiln_encode_float8e8m0 (runtime/kiln_convert.h) numbers them
_ROUND_MODES = {"up": 0, "down": 1, "nearest": 2}


@scalar("convert")
def convert(x, dtype, to, saturate=1, round_mode="up"):
    """A cast through float32 where a side is a storage type: kiln_decode_<type> after the
    load, kiln_encode_<type> (C prelude functions) before the store."""
    if x.dtype.is_storage:
        x = K.Call(f"kiln_decode_{x.dtype.name}", (x,), DType.float32)
    if not to.is_storage:
        return cast(x, dtype, to)
    args = [K.cast(x, DType.float32), K.const(int(bool(saturate)), DType.int32)]
    if to is DType.float8e8m0:
        args.append(K.const(_ROUND_MODES[round_mode], DType.int32))
    return K.Call(f"kiln_encode_{to.name}", tuple(args), to)


#: binary IR ops that are one kernel-IR operator
_OPERATORS = {"add": "+", "sub": "-", "mul": "*", "equal": "==", "less": "<",
              "less_equal": "<=", "greater": ">", "greater_equal": ">=", "and": "&&",
              "or": "||", "xor": "^^"}


def _operator(name: str, op: str) -> None:
    @scalar(name)
    def fn(a, b, dtype):
        return K.binary(op, a, b)


for _name, _op in _OPERATORS.items():
    _operator(_name, _op)


@scalar("div")
def div(a, b, dtype):
    """Integer division by zero is undefined in ONNX; here it gives 0 instead of a trap
    that would take down the host process."""
    if a.dtype.is_float:
        return K.binary("/", a, b)
    zero = K.const(0, b.dtype)
    return K.select(K.binary("==", b, zero), K.const(0, a.dtype), K.binary("/", a, b))


@scalar("pow")
def pow_(a, b, dtype):
    if isinstance(b, K.Const) and b.value == 2:
        return a * a
    return K.Call("pow", (a, K.cast(b, a.dtype)), a.dtype)


@scalar("max")
def max_(a, b, dtype):
    return K.select(K.binary("<", a, b), b, a)


@scalar("min")
def min_(a, b, dtype):
    return K.select(K.binary(">", a, b), b, a)


@scalar("where")
def where(cond, a, b, dtype):
    return K.select(cond, a, b)


@scalar("dequantize")
def dequantize(x, scale, zero_point, dtype):
    return (K.cast(x, DType.float32) - K.cast(zero_point, DType.float32)) * scale


@scalar("quantize")
def quantize(x, scale, zero_point, dtype):
    """Round half to even (C's nearbyint), add the zero point, saturate to `dtype`."""
    value = K.call("round", K.binary("/", x, scale)) + K.cast(zero_point, DType.float32)
    low, high = QUANTIZED[dtype]
    return K.cast(clip(value, DType.float32, float(low), float(high)), dtype)
