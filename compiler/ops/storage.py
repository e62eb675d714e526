"""Conversions to and from storage types (bfloat16, float8, float4, int4/uint4, int2/uint2).

`convert` is elementwise: a cast where one side is a byte-sized storage type (with ONNX Cast's
saturate and round_mode). `pack` and `unpack` move between a sub-byte type and its compute
type (int8/uint8/float32): their kernels touch whole bytes, so they are not fused.
"""

from __future__ import annotations

import numpy as np

from ..dtypes import DType
from ..errors import Problem, UnsupportedModelError
from ..ir import Graph, TensorType
from .registry import register

#: largest finite value of each float storage format
FLOAT_MAX = {DType.float8e4m3fn: 448.0, DType.float8e4m3fnuz: 240.0,
             DType.float8e5m2: 57344.0, DType.float8e5m2fnuz: 57344.0,
             DType.float4e2m1: 6.0, DType.bfloat16: float("inf")}
ROUND_MODES = ("up", "down", "nearest")


def _to_type(types: list[TensorType], attrs) -> list[TensorType]:
    return [TensorType(attrs["to"], types[0].shape)]


def _compute_type(types: list[TensorType], attrs) -> list[TensorType]:
    return [TensorType(types[0].dtype.compute, types[0].shape)]


def encode_e8m0(x: np.ndarray, saturate: bool = True, round_mode: str = "up") -> np.ndarray:
    """float32 -> E8M0 (a biased power of two; 0xFF is NaN) with ONNX's rounding modes."""
    bits = np.asarray(x, np.float32).view(np.uint32)
    exponent = ((bits >> 23) & 0xFF).astype(np.int32)
    mantissa = bits & 0x7FFFFF
    if round_mode == "up":
        up = mantissa != 0
    elif round_mode == "nearest":
        up = ((mantissa & 0x400000) != 0) & (((mantissa & 0x3FFFFF) != 0) | (exponent > 0))
    else:
        up = np.zeros(exponent.shape, bool)
    up &= exponent != 0xFF
    overflow = up & (exponent == 0xFE)
    exponent = np.where(up & ~overflow, exponent + 1, exponent)
    exponent = np.where(overflow, 0xFE if saturate else 0xFF, exponent)
    return exponent.astype(np.uint8).view(DType.float8e8m0.numpy)


def encode_float(x: np.ndarray, to: DType, saturate: bool = True,
                 round_mode: str = "up") -> np.ndarray:
    """Float values -> a float storage type, rounding to nearest even (ONNX Cast)."""
    x = np.asarray(x).astype(np.float32)
    if to is DType.float8e8m0:
        return encode_e8m0(x, saturate, round_mode)
    if to is DType.float4e2m1:   # always saturates; NaN becomes -0 as in ONNX's reference
        x = np.where(np.isnan(x), np.float32(-0.0), x)
        saturate = True
    limit = np.float32(FLOAT_MAX[to])
    if saturate:
        x = np.where(np.isnan(x), x, np.clip(x, -limit, limit))
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(to.numpy)


@register("convert", "unary", _to_type)
def convert(x, to: DType, saturate=1, round_mode="up"):
    """Cast where `x` or `to` is a byte-sized storage type: decode to float32 exactly,
    encode with round-to-nearest-even and ONNX's saturation (E8M0: `round_mode`)."""
    source = DType.from_numpy(x.dtype)
    if source.is_storage:
        x = x.astype(np.float32)
    if not to.is_storage:
        with np.errstate(over="ignore", invalid="ignore"):
            return x.astype(to.numpy)
    return encode_float(x, to, bool(saturate), round_mode)


@register("pack", "movement", _to_type)
def pack(x, to: DType):
    """Values -> sub-byte type `to`: integers keep their low bits (ONNX Cast wraps), floats
    round to nearest even and saturate (E2M1)."""
    if to is DType.float4e2m1:
        return encode_float(x, to)
    bits = to.bits
    low = np.asarray(x).astype(np.int64) & ((1 << bits) - 1)
    if to in (DType.int4, DType.int2):
        low = np.where(low >= 1 << (bits - 1), low - (1 << bits), low)
    return low.astype(to.numpy)


@register("unpack", "movement", _compute_type)
def unpack(x):
    """Sub-byte values -> their compute type (int8, uint8 or float32), exactly."""
    return x.astype(DType.from_numpy(x.dtype).compute.numpy)


#: IR ops that may read or write a storage type; the data-movement ones only copy elements,
#: so they are fine for byte-sized storage types (not for packed ones)
STORAGE_OPS = frozenset({"convert", "pack", "unpack"})
COPY_OPS = frozenset({"reshape", "identity", "transpose", "bitcast"})


def check_storage_uses(graph: Graph, renderer: str = "c") -> None:
    """Refuse, in one error listing them all, IR ops that would compute on a storage type's
    raw bits (only conversions may read or write them, and plain copies of byte-sized ones),
    and any storage type at all for the LLVM renderer, which has no conversions for them."""
    problems = []
    for node in graph.nodes:
        for value in (*node.inputs, *node.outputs):
            dtype = value.dtype
            if not dtype.is_storage:
                continue
            if renderer != "c":
                problems.append(Problem(node.name, node.op, "kiln", 0,
                                        f"the {renderer} renderer has no {dtype.name} "
                                        f"conversions", "compile with emit='c'"))
                break
            if node.op not in STORAGE_OPS and (dtype.is_packed or node.op not in COPY_OPS):
                problems.append(Problem(node.name, node.op, "kiln", 0,
                                        f"this op would read or write {dtype.name} values "
                                        f"directly, which Kiln does not support",
                                        f"Cast to {dtype.compute.name} first"))
                break
    if problems:
        raise UnsupportedModelError(problems)
