"""More elementwise math: trigonometric and hyperbolic functions, fmod/mod, bit shifts and
bitwise logic. Each is a plain unary or binary op with numpy broadcasting."""

from __future__ import annotations

import numpy as np

from .registry import broadcast, register, same_as_first

#: IR op -> numpy function, for the unary transcendental functions
TRIG = {"tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
        "sinh": np.sinh, "cosh": np.cosh, "asinh": np.arcsinh, "acosh": np.arccosh,
        "atanh": np.arctanh}


def _trig(name: str, fn) -> None:
    @register(name, "unary", same_as_first)
    def reference(x):
        return fn(x)

    reference.__doc__ = f"elementwise {fn.__name__}"


for _name, _fn in TRIG.items():
    _trig(_name, _fn)


@register("bitwise_not", "unary", same_as_first)
def bitwise_not(x):
    """~x on integers."""
    return np.invert(x)


def _binary(name: str):
    return register(name, "binary", broadcast)


@_binary("mod")
def mod(a, b, fmod=0):
    """fmod=1: C fmod (sign of a); fmod=0: integer modulo with the sign of b (Python's %).
    A zero divisor gives 0 for integers."""
    if fmod:
        return np.fmod(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, 0, np.mod(a, np.where(b == 0, 1, b))).astype(a.dtype)


@_binary("bit_shift")
def bit_shift(a, b, direction="LEFT"):
    """a << b or a >> b on unsigned integers (shifts past the width give 0)."""
    bits = a.dtype.itemsize * 8
    b = b.astype(a.dtype)
    shifted = np.left_shift(a, b) if direction == "LEFT" else np.right_shift(a, b)
    return np.where(b >= bits, 0, shifted).astype(a.dtype)


@_binary("bitwise_and")
def bitwise_and(a, b):
    return np.bitwise_and(a, b)


@_binary("bitwise_or")
def bitwise_or(a, b):
    return np.bitwise_or(a, b)


@_binary("bitwise_xor")
def bitwise_xor(a, b):
    return np.bitwise_xor(a, b)
