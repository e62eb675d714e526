"""Scalar expressions for the ops of compiler/ops/math.py (registered in the SCALAR table)."""

from __future__ import annotations

from ...compiler.dtypes import DType
from .. import kernel_ir as K
from .scalar import scalar

for _name in ("tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh"):
    def _make(name: str) -> None:
        @scalar(name)
        def fn(x: K.Expr, dtype: DType) -> K.Expr:
            return K.call(name, x)

    _make(_name)


@scalar("bitwise_not")
def bitwise_not(x, dtype):
    return K.Unary("~", x, x.dtype)


def _bitwise_op(name: str, op: str) -> None:
    @scalar(name)
    def fn(a, b, dtype):
        return K.Binary(op, a, b, a.dtype)


for _name, _op in (("bitwise_and", "&"), ("bitwise_or", "|"), ("bitwise_xor", "^")):
    _bitwise_op(_name, _op)


@scalar("bit_shift")
def bit_shift(a, b, dtype, direction="LEFT"):
    """Shifts by the operand's width or more give 0 (C leaves them undefined)."""
    bits = a.dtype.itemsize * 8
    amount = K.cast(b, a.dtype)
    shifted = K.Binary("<<" if direction == "LEFT" else ">>", a, amount, a.dtype)
    return K.select(K.binary(">=", amount, K.const(bits, a.dtype)), K.const(0, a.dtype),
                    shifted)


@scalar("mod")
def mod(a, b, dtype, fmod=0):
    """fmod=1: C's fmod/% (sign of the dividend); fmod=0: the sign of the divisor."""
    zero = K.const(0, a.dtype)
    if a.dtype.is_float:
        r = K.binary("%", a, b)           # rendered as fmod
        if fmod:
            return r
        wrong_sign = K.binary("&&", K.binary("!=", r, zero),
                              K.binary("!=", K.binary("<", r, zero), K.binary("<", b, zero)))
        return K.select(wrong_sign, r + b, r)
    safe = K.select(K.binary("==", b, zero), K.const(1, a.dtype), b)
    r = K.binary("%", a, safe)
    if not fmod and a.dtype not in (DType.uint8, DType.uint16, DType.uint32, DType.uint64):
        wrong_sign = K.binary("&&", K.binary("!=", r, zero),
                              K.binary("!=", K.binary("<", r, zero), K.binary("<", safe, zero)))
        r = K.select(wrong_sign, r + safe, r)
    return K.select(K.binary("==", b, zero), zero, r)
