"""exp and erf on float32 vectors, written once as kernel-IR Functions that every renderer
prints (C: static inline functions; LLVM IR: internal, always-inlined functions).

Plain arithmetic on the lanes, no branches and no libm, so epilogues and softmax rows call
them on registers. Each is built for a lane count (1 for a scalar, 8 or 16 for a vector) and
cached, so every kernel of a module calls the same Function (module.py defines it once):

    kiln_expf_v8(x)   bits = x's bits; clamp |x| to 89 (x >= 0) or 104 (x < 0) comparing
                      them as integers (NaN stays NaN); n = round(x / ln2) by adding
                      1.5 * 2^23; r = x - n ln2 (ln2 in two parts); e^r by a degree-7
                      polynomial; times 2^n as two exact power-of-two factors, so results
                      overflow to inf and underflow through subnormals to 0 as expf does
                      (within 2 ulp of libm's expf)
    kiln_erff_v8(x)   clamp |x| to 3.925 (erf is +-1 in float32 beyond), then
                      x * P(x^2) / Q(x^2), a rational fit made for Kiln (max abs error 4e-7)

The arithmetic, its constants and its order are those of the scalar kiln_expf / kiln_erff
in templates/model.c.j2, which the C renderer calls on scalars (the LLVM renderer calls the
1-lane Functions there, so both renderers compute the same values).
"""

from __future__ import annotations

from functools import cache
from typing import Callable, Sequence

from ...compiler.dtypes import DType
from .. import kernel_ir as K

F32, I32, U32 = DType.float32, DType.int32, DType.uint32

#: erf's numerator P(t) and denominator Q(t) in t = x^2, highest power first
_ERF_P = (-1.1546266165396446e-08, 4.367294877738459e-06, 0.00036777270724996924,
          0.0038143908604979515, 0.0540461465716362, 0.1852007508277893, 1.128379225730896)
_ERF_Q = (6.010915240040049e-05, 0.0012845078017562628, 0.015350383706390858,
          0.11371796578168869, 0.49746325612068176, 1.0)
_ERF_LIMIT = 0x407b3333        # 3.925f: erf rounds to +-1 in float32 beyond

#: e^r - 1 - r = r^2 * P(r), highest power first
_EXP_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
          1.6666665459e-1, 5.0000001201e-1)
_EXP_HIGH, _EXP_LOW = 0x42b20000, 0x42d00000   # 89.0f and 104.0f: |x| clamped to these
_LOG2E = 1.44269504088896341
_LN2_HI, _LN2_LO = 0.693359375, -2.12194440e-4  # ln2 in two parts, _LN2_HI exact in 9 bits
_ROUND = 12582912.0            # 1.5 * 2^23: adding it rounds to an integer (bits 0x4b400000)
_ROUND_BITS = 0x4b400000
_EXPONENT_BIAS = 127
_MANTISSA_BITS = 23
_ABS_MASK, _SIGN_MASK, _INF_BITS = 0x7fffffff, -0x80000000, 0x7f800000


class _Body:
    """The statements of one lane count's function, built with readable locals."""

    def __init__(self, lanes: int) -> None:
        self.lanes = lanes
        self.stmts: list[K.Stmt] = []
        self.x = self.var("x", F32)

    def var(self, name: str, dtype: DType) -> K.Expr:
        return K.VecVar(name, self.lanes, dtype) if self.lanes > 1 else K.Var(name, dtype)

    def const(self, value: float | int, dtype: DType) -> K.Expr:
        scalar = K.const(value, dtype)
        return K.Broadcast(scalar, self.lanes) if self.lanes > 1 else scalar

    def let(self, name: str, value: K.Expr) -> K.Expr:
        local = self.var(name, value.dtype)
        self.stmts.append(K.Let(local, value))
        return local

    def assign(self, local: K.Expr, value: K.Expr) -> None:
        self.stmts.append(K.Assign(local, value))

    def binary(self, op: str, a: K.Expr, b: K.Expr | float | int) -> K.Expr:
        """a op b, a constant `b` splat to a's type; a comparison's result is a mask."""
        other = b if isinstance(b, K.Expr) else self.const(b, a.dtype)
        dtype = DType.bool if op in K.COMPARISONS else a.dtype
        return K.Binary(op, a, other, dtype)

    def clamp_magnitude(self, bits: K.Expr, limit: K.Expr) -> None:
        """bits = the bits of +-limit where limit < |x| <= inf (NaN's bits are kept)."""
        mag = self.let("mag", self.binary("&", bits, _ABS_MASK))
        # a mask stays an expression: C's vector comparisons give int vectors, not bools
        clamp = self.binary("&", self.binary(">", mag, limit), self.binary("<=", mag, _INF_BITS))
        clamped = self.binary("|", self.binary("&", bits, _SIGN_MASK), limit)
        self.assign(bits, K.Select(clamp, clamped, bits, I32))

    def horner(self, name: str, t: K.Expr, coefs: Sequence[float]) -> K.Expr:
        """p = coefs[0] * t + coefs[1]; p = p * t + coefs[i] ... (as the C prelude writes)."""
        p = self.let(name, self.binary("+", self.binary("*", t, coefs[0]), coefs[1]))
        for c in coefs[2:]:
            self.assign(p, self.binary("+", self.binary("*", p, t), c))
        return p

    def function(self, name: str, result: K.Expr, doc: str) -> K.Function:
        return K.Function(name, [self.x], self.stmts, doc, result)


def _name(base: str, lanes: int) -> str:
    return f"{base}_v{lanes}" if lanes > 1 else f"{base}_s"


@cache
def expf(lanes: int) -> K.Function:
    """exp on `lanes` float32s (kiln_expf_v<lanes>; kiln_expf_s for 1), within 2 ulp."""
    f = _Body(lanes)
    bits = f.let("bits", K.bitcast(f.x, I32))
    negative = f.binary("<", bits, 0)
    limit = f.let("limit", K.Select(negative, f.const(_EXP_LOW, I32), f.const(_EXP_HIGH, I32),
                                    I32))
    f.clamp_magnitude(bits, limit)
    c = f.let("c", K.bitcast(bits, F32))
    shifted = f.let("shifted", f.binary("+", f.binary("*", c, _LOG2E), _ROUND))
    n = f.let("n", f.binary("-", shifted, _ROUND))
    k = f.let("k", f.binary("-", K.bitcast(shifted, I32), _ROUND_BITS))
    r = f.let("r", f.binary("-", c, f.binary("*", n, _LN2_HI)))
    f.assign(r, f.binary("-", r, f.binary("*", n, _LN2_LO)))
    p = f.horner("p", r, _EXP_P)
    f.assign(p, f.binary("+", f.binary("+", f.binary("*", p, f.binary("*", r, r)), r), 1.0))
    half = f.let("half", f.binary("/", k, 2))
    f1 = f.let("f1", _power_of_two(f, half))
    f2 = f.let("f2", _power_of_two(f, f.binary("-", k, half)))
    return f.function(_name("kiln_expf", lanes), f.binary("*", f.binary("*", p, f1), f2),
                      "exp on float32 lanes within 2 ulp (lower/vector_math.py)")


def _power_of_two(f: _Body, e: K.Expr) -> K.Expr:
    """2^e as a float32 (e + bias in the exponent bits; -126 <= e <= 127), shifted as an
    unsigned int so that a NaN lane's garbage exponent cannot overflow a signed shift."""
    biased = K.bitcast(f.binary("+", e, _EXPONENT_BIAS), U32)
    return K.bitcast(f.binary("<<", biased, _MANTISSA_BITS), F32)


@cache
def erff(lanes: int) -> K.Function:
    """erf on `lanes` float32s (kiln_erff_v<lanes>; kiln_erff_s for 1), abs error 4e-7."""
    f = _Body(lanes)
    bits = f.let("bits", K.bitcast(f.x, I32))
    f.clamp_magnitude(bits, f.const(_ERF_LIMIT, I32))
    c = f.let("c", K.bitcast(bits, F32))
    t = f.let("t", f.binary("*", c, c))
    p = f.horner("p", t, _ERF_P)
    q = f.horner("q", t, _ERF_Q)
    return f.function(_name("kiln_erff", lanes), f.binary("/", f.binary("*", c, p), q),
                      "erf on float32 lanes, abs error 4e-7 (lower/vector_math.py)")


#: intrinsic name -> the Function computing it on float32 lanes (exp is the polynomial,
#: within 2 ulp, like exp_poly)
FUNCTIONS: dict[str, Callable[[int], K.Function]] = {"exp": expf, "exp_poly": expf,
                                                     "erf": erff}

#: the intrinsics whose float32 scalars are this arithmetic too (C's kiln_erff and
#: kiln_expf; scalar exp is libm's expf): the LLVM renderer calls Function(1) for them
SCALAR_FUNCTIONS: dict[str, Callable[[int], K.Function]] = {"exp_poly": expf, "erf": erff}


def vector_call(fn: str, x: K.Expr) -> K.Apply:
    """Intrinsic `fn` (a key of FUNCTIONS) on the float32 vector `x`, as an Apply of the
    Function for x's lanes."""
    return K.Apply(FUNCTIONS[fn](K.lanes_of(x)), (x,))
