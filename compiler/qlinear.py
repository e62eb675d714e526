"""ONNX Runtime's integer arithmetic for its 8-bit elementwise ops, written as graph-IR ops
through a builder, so an imported QLinearAdd (com.microsoft) and the QDQ form of the same Add
(passes/qdq_to_integer.py) compute the same bits as ONNX Runtime does. Every tensor read
and written stays 8-bit; scales and zero points are per tensor and known at compile time.

    add:     y = sat(rint(fma(p, r_p, fma(q, r_q, fixed))))       (MLAS's AVX2 kernel)
             r_p = s_p / s_y, r_q = s_q / s_y, fixed = z_y - fma(z_p, r_p, r_q * z_q);
             p is A, unless A is the operand broadcast along the innermost varying axis
             (ONNX Runtime then swaps the roles of A and B)
    mul:     y = sat(rint(float((a - z_a) * (b - z_b)) * (s_a * s_b / s_y) + z_y))
    table:   y = table[x], 256 entries computed here: quantize(f(dequantize(v))) for each
             value v (QLinearSigmoid, QLinearLeakyRelu, and the requantize of QLinearConcat)
    concat:  inputs quantized as the output as they are, the others through a table
    pool:    y = sat(rint(float(sum(x) - z_x * n) * (s_x / (s_y * n))) + z_y)

All of it in float32 as MLAS does (fma: one rounding). The float32 steps are carried out
in float64 with an explicit rounding to float32 after each: an 8-bit value times a float32
ratio is exact in float64, so the result does not depend on whether the C compiler fuses
the multiply and the add.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from .dtypes import DType
from .ir import Value

F32, F64 = np.float32, np.float64


class Builder(Protocol):
    """Where the ops go: the importer's context, or a pass's inserter."""

    def emit(self, op: str, inputs: list[Value], **attrs: Any) -> Value: ...

    def const(self, data: Any, dtype: Any = None, name: str = "") -> Value: ...


@dataclass(frozen=True)
class QParams:
    """A per-tensor scale (float32) and zero point."""

    scale: np.float32
    zero: int


def _fma(x, r, c) -> np.float32:
    """float32 fused multiply-add of compile-time values (exact in float64, then rounded)."""
    return F32(F64(x) * F64(r) + F64(c))


def _to_f32(b: Builder, x: Value) -> Value:
    return b.emit("cast", [x], to=DType.float32)


def _fma_ir(b: Builder, x: Value, r: np.float32, c: Value | np.float32) -> Value:
    """float32(x * r + c) for an 8-bit (or float32) x, as one rounding."""
    wide = b.emit("cast", [x], to=DType.float64)
    c = b.const(F64(c)) if not isinstance(c, Value) else b.emit("cast", [c], to=DType.float64)
    return _to_f32(b, b.emit("add", [b.emit("mul", [wide, b.const(F64(r))]), c]))


def saturate(b: Builder, value: Value, out: DType) -> Value:
    """float32 -> `out`: round half to even, clamp to its range."""
    info = np.iinfo(out.numpy)
    value = b.emit("clip", [b.emit("round", [value])], min=float(info.min), max=float(info.max))
    return b.emit("cast", [value], to=out)


def inner_operand_broadcast(a: tuple[int, ...], c: tuple[int, ...]) -> bool:
    """Whether `a` is the one broadcast along the innermost axis where the result varies
    (ONNX Runtime's broadcaster then hands it to the kernel as the scalar operand)."""
    rank = max(len(a), len(c))
    a, c = (1,) * (rank - len(a)) + tuple(a), (1,) * (rank - len(c)) + tuple(c)
    for da, dc in zip(reversed(a), reversed(c)):
        if max(da, dc) > 1:
            return da == 1
    return False


def add(b: Builder, x: Value, xp: QParams, y: Value, yp: QParams, out: QParams) -> Value:
    """QLinearAdd of 8-bit x and y (broadcast), as ONNX Runtime rounds it."""
    (p, pp), (q, qp) = ((y, yp), (x, xp)) if inner_operand_broadcast(x.shape, y.shape) \
        else ((x, xp), (y, yp))
    r_p, r_q = F32(pp.scale) / F32(out.scale), F32(qp.scale) / F32(out.scale)
    fixed = F32(F32(out.zero) - _fma(pp.zero, r_p, F32(r_q * F32(qp.zero))))
    inner = _fma_ir(b, q, r_q, fixed)
    return saturate(b, _fma_ir(b, p, r_p, inner), x.dtype)


def mul(b: Builder, x: Value, xp: QParams, y: Value, yp: QParams, out: QParams) -> Value:
    """QLinearMul of 8-bit x and y (broadcast): the exact int32 product, then one float32
    multiply by the combined scale and the zero point's add (two roundings, as MLAS)."""
    wide = [b.emit("sub", [b.emit("cast", [v], to=DType.int32), b.const(np.int32(p.zero))])
            for v, p in ((x, xp), (y, yp))]
    ratio = F32(F32(xp.scale) * F32(yp.scale)) / F32(out.scale)
    product = _to_f32(b, b.emit("mul", [b.emit("cast", [b.emit("mul", wide)], to=DType.float64),
                                        b.const(F64(ratio))]))
    return saturate(b, b.emit("add", [product, b.const(F32(out.zero))]), x.dtype)


def table(dtype: DType, xp: QParams, yp: QParams,
          f: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """The 256 results quantize(f(dequantize(v))) for v in dtype's range, in order from its
    minimum (f in float32; None: identity, a requantize)."""
    info = np.iinfo(dtype.numpy)
    values = np.arange(info.min, info.max + 1)
    real = (values.astype(F32) - F32(xp.zero)) * F32(xp.scale)
    if f is not None:
        real = np.asarray(f(real), F32)
    scaled = np.clip((real / F32(yp.scale)).astype(F32), info.min - yp.zero,
                     info.max - yp.zero)
    return (np.rint(scaled) + yp.zero).astype(dtype.numpy)


def lookup(b: Builder, x: Value, entries: np.ndarray, name: str) -> Value:
    """entries[x - min]: a 256-entry 8-bit table gathered by the 8-bit value."""
    low = int(np.iinfo(x.dtype.numpy).min)
    index = b.emit("cast", [x], to=DType.int32)
    if low:
        index = b.emit("sub", [index, b.const(np.int32(low))])
    return b.emit("gather", [b.const(entries, name=name), index], axis=0)


def concat(b: Builder, parts: list[tuple[Value, QParams]], out: QParams, axis: int,
           name: str) -> Value:
    """QLinearConcat: parts quantized as the output pass as they are, the others through
    their requantize table."""
    values = [x if params == out else lookup(b, x, table(x.dtype, params, out), f"{name}{i}")
              for i, (x, params) in enumerate(parts)]
    return b.emit("concat", values, axis=axis)


def sigmoid(real: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-real.astype(F64)))).astype(F32)


def leaky_relu(alpha: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda real: np.where(real >= 0, real, real * F32(alpha)).astype(F32)


def average(b: Builder, x: Value, xp: QParams, out: QParams, axes: tuple[int, ...]) -> Value:
    """The mean over `axes` (kept, size 1) of 8-bit x: exact int32 sum, one float32 scale."""
    count = int(np.prod([x.shape[a] for a in axes]))
    total = b.emit("reduce_sum", [b.emit("cast", [x], to=DType.int32)], axes=tuple(axes),
                   keepdims=True)
    total = b.emit("sub", [total, b.const(np.int32(xp.zero * count))])
    scale = F32(xp.scale) / (F32(out.scale) * F32(count))
    value = b.emit("round", [b.emit("mul", [_to_f32(b, total), b.const(F32(scale))])])
    info = np.iinfo(x.dtype.numpy)
    value = b.emit("clip", [b.emit("add", [value, b.const(F32(out.zero))])],
                   min=float(info.min), max=float(info.max))
    return b.emit("cast", [value], to=x.dtype)
