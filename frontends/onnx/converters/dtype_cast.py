"""Casting between any two Kiln dtypes, storage types included: the one place that decides
which IR ops a conversion takes (shared by Cast, CastLike, QuantizeLinear, DequantizeLinear).

    sub-byte source   -> unpack to its compute type (int8/uint8/float32) first
    sub-byte target   -> pack (integers keep their low bits, as ONNX Cast wraps; float4
                         rounds to nearest even and saturates)
    byte-sized storage type on either side (bfloat16, float8) -> convert (saturate, round_mode)
    otherwise         -> cast
"""

from __future__ import annotations

import numpy as np

from ....compiler.dtypes import DType

ROUND_MODES = ("up", "down", "nearest")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def convert_to(ctx, x, to: DType, saturate=1, round_mode="up"):
    """`x` converted to dtype `to` with ONNX Cast's meaning (opset 19+ saturate, 24+ round_mode
    for float8e8m0)."""
    round_mode = _text(round_mode)
    if round_mode not in ROUND_MODES:
        ctx.fail(f"round_mode '{round_mode}' is not one of {', '.join(ROUND_MODES)}")
    if int(saturate) not in (0, 1):
        ctx.fail(f"saturate must be 0 or 1, not {saturate}")
    if x.dtype is to:
        return x
    if x.dtype.is_packed:
        x = ctx.emit("unpack", [x])
        if x.dtype is to:
            return x
    if to.is_packed:
        wanted = DType.float32 if to is DType.float4e2m1 else DType.int64
        if wanted is DType.int64 and x.dtype.is_float:
            x = _integral_bits(ctx, x)
        if x.dtype is not wanted:
            x = convert_to(ctx, x, wanted)
        return ctx.emit("pack", [x], to=to)
    if x.dtype.is_storage or to.is_storage:
        return ctx.emit("convert", [x], to=to, saturate=int(saturate), round_mode=round_mode)
    return ctx.emit("cast", [x], to=to)


def _integral_bits(ctx, x):
    """Floats bound for a 4-/2-bit integer: NaN becomes 0 and values beyond 2**62 (Inf) are
    clamped there (their low bits are 0, as ONNX's reference gives), so the C conversion to
    int64 is defined on every target."""
    limit = float(2 ** 62)
    clamped = ctx.emit("clip", [x], min=-limit, max=limit)
    zero = ctx.const(np.zeros((), x.dtype.numpy))
    return ctx.emit("where", [ctx.emit("isnan", [x]), zero, clamped])
