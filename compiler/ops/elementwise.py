"""Elementwise ops: unary, binary (numpy broadcasting) and `where`."""

from __future__ import annotations

import math

import numpy as np

from ..dtypes import DType
from ..ir import TensorType
from .registry import broadcast, broadcast_bool, register, same_as_first

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _unary(name: str):
    return register(name, "unary", same_as_first)


@_unary("identity")
def identity(x):
    """y = x"""
    return x.copy()


@_unary("relu")
def relu(x):
    return np.maximum(x, 0).astype(x.dtype)


@_unary("sigmoid")
def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@_unary("tanh")
def tanh(x):
    return np.tanh(x)


@_unary("exp")
def exp(x):
    return np.exp(x)


@_unary("log")
def log(x):
    return np.log(x)


@_unary("sqrt")
def sqrt(x):
    return np.sqrt(x)


@_unary("reciprocal")
def reciprocal(x):
    return 1 / x


@_unary("neg")
def neg(x):
    return -x


@_unary("abs")
def abs_(x):
    return np.abs(x)


@_unary("erf")
def erf(x):
    return _erf(x)


@_unary("floor")
def floor(x):
    return np.floor(x)


@_unary("ceil")
def ceil(x):
    return np.ceil(x)


@_unary("round")
def round_(x):
    """Round half to even, as ONNX specifies."""
    return np.round(x)


@_unary("sin")
def sin(x):
    return np.sin(x)


@_unary("cos")
def cos(x):
    return np.cos(x)


@_unary("sign")
def sign(x):
    return np.sign(x)


@_unary("softplus")
def softplus(x):
    return np.log1p(np.exp(x))


@_unary("not")
def not_(x):
    return np.logical_not(x)


@_unary("clip")
def clip(x, min=None, max=None):
    """Clamp to [min, max]; a bound of None is open."""
    y = x
    if min is not None:
        y = np.maximum(y, min)
    if max is not None:
        y = np.minimum(y, max)
    return y


@_unary("leaky_relu")
def leaky_relu(x, alpha=0.01):
    return np.where(x >= 0, x, alpha * x)


@_unary("elu")
def elu(x, alpha=1.0):
    return np.where(x >= 0, x, alpha * (np.exp(x) - 1))


@_unary("hard_sigmoid")
def hard_sigmoid(x, alpha=0.2, beta=0.5):
    return np.clip(alpha * x + beta, 0, 1)


@_unary("hard_swish")
def hard_swish(x):
    return x * np.clip(x / 6 + 0.5, 0, 1)


@_unary("swish")
def swish(x, alpha=1.0):
    """y = x * sigmoid(alpha * x): SiLU at alpha 1, the activation of EfficientNet and
    MobileNetV3 (exporters emit it as Sigmoid then Mul; passes/fuse_swish.py joins them)."""
    return x / (1 + np.exp(-alpha * x))


@_unary("gelu")
def gelu(x, approximate="none"):
    x64 = x.astype(np.float64)
    if approximate == "tanh":
        return 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    return 0.5 * x64 * (1 + _erf(x64 / math.sqrt(2)))


def _bool_type(types: list[TensorType], attrs) -> list[TensorType]:
    return [TensorType(DType.bool, types[0].shape)]


@register("isnan", "unary", _bool_type)
def isnan(x):
    """True where x is NaN."""
    return np.isnan(x)


@register("isinf", "unary", _bool_type)
def isinf(x, detect_negative=1, detect_positive=1):
    """True where x is +inf (if detect_positive) or -inf (if detect_negative)."""
    return (np.isposinf(x) & bool(detect_positive)) | (np.isneginf(x) & bool(detect_negative))


def _cast_type(types: list[TensorType], attrs) -> list[TensorType]:
    return [TensorType(attrs["to"], types[0].shape)]


@register("cast", "unary", _cast_type)
def cast(x, to: DType):
    """Convert to dtype `to` (float to int truncates toward zero, as C does)."""
    return x.astype(to.numpy)


def _binary(name: str, infer=broadcast, commutative: bool = False):
    return register(name, "binary", infer, commutative=commutative)


@_binary("add", commutative=True)
def add(a, b):
    return a + b


@_binary("sub")
def sub(a, b):
    return a - b


@_binary("mul", commutative=True)
def mul(a, b):
    return a * b


@_binary("div")
def div(a, b):
    """True division for floats; integer division truncates toward zero (as C does)."""
    if np.issubdtype(a.dtype, np.integer):
        return np.trunc(a / b).astype(a.dtype)
    return a / b


@_binary("pow")
def pow_(a, b):
    return np.power(a, b.astype(a.dtype) if a.dtype.kind == "f" else b)


@_binary("max", commutative=True)
def max_(a, b):
    return np.maximum(a, b)


@_binary("min", commutative=True)
def min_(a, b):
    return np.minimum(a, b)


@_binary("equal", broadcast_bool, commutative=True)
def equal(a, b):
    return a == b


@_binary("less", broadcast_bool)
def less(a, b):
    return a < b


@_binary("less_equal", broadcast_bool)
def less_equal(a, b):
    return a <= b


@_binary("greater", broadcast_bool)
def greater(a, b):
    return a > b


@_binary("greater_equal", broadcast_bool)
def greater_equal(a, b):
    return a >= b


@_binary("and", broadcast_bool, commutative=True)
def and_(a, b):
    return np.logical_and(a, b)


@_binary("or", broadcast_bool, commutative=True)
def or_(a, b):
    return np.logical_or(a, b)


@_binary("xor", broadcast_bool, commutative=True)
def xor(a, b):
    return np.logical_xor(a, b)


def _where_type(types: list[TensorType], attrs) -> list[TensorType]:
    return broadcast(types, attrs, types[1].dtype)


@register("where", "ternary", _where_type)
def where(cond, a, b):
    return np.where(cond, a, b)
