"""Linear quantization of one tensor as IR ops (ONNX's QuantizeLinear / DequantizeLinear on
8-bit values, per tensor or per axis), so the QDQ pass (passes/qdq_to_integer.py) can read
the pattern a QDQ model is written in:

    dequantize(x, scale, zero_point) = (float32(x) - float32(zero_point)) * scale
    quantize(x, scale, zero_point)   = saturate(round_half_even(x / scale) + zero_point)

x is int8/uint8 (or an int32 bias) for dequantize, float32 for quantize; scale (float32) and
zero_point (x's or the result's dtype) are already shaped to broadcast against x (a [C,1,1]
per-axis vector, or a scalar). Both are elementwise; a dequantize whose inputs are constants
is kept by the importer (folds_at_import=False) so a quantized weight reaches the QDQ pass
8-bit, and fold_constants folds the ones that pass leaves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import DType
from ..errors import ShapeError
from ..ir import TensorType
from .registry import broadcast, register

#: what dequantize reads, and the range of what quantize writes
DEQUANTIZED = (DType.int8, DType.uint8, DType.int32)
QUANTIZED = {DType.int8: (-128, 127), DType.uint8: (0, 255)}


def _dequantize_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x, scale, zero = types
    if x.dtype not in DEQUANTIZED or zero.dtype is not x.dtype:
        raise ShapeError(f"dequantize takes int8/uint8/int32 values and a zero point of their "
                         f"dtype, not {x.dtype.name} and {zero.dtype.name}")
    if scale.dtype is not DType.float32:
        raise ShapeError(f"dequantize's scale must be float32, not {scale.dtype.name}")
    return broadcast(types, attrs, DType.float32)


@register("dequantize", "ternary", _dequantize_type, folds_at_import=False)
def dequantize(x, scale, zero_point):
    """(float32(x) - float32(zero_point)) * scale, broadcast."""
    return (x.astype(np.float32) - zero_point.astype(np.float32)) * scale


def _quantize_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x, scale, zero = types
    if x.dtype is not DType.float32 or scale.dtype is not DType.float32:
        raise ShapeError(f"quantize takes float32 values and scale, not {x.dtype.name} and "
                         f"{scale.dtype.name}")
    if zero.dtype not in QUANTIZED:
        raise ShapeError(f"quantize writes int8 or uint8 (its zero point's dtype), not "
                         f"{zero.dtype.name}")
    return broadcast(types, attrs, zero.dtype)


@register("quantize", "ternary", _quantize_type)
def quantize(x, scale, zero_point):
    """saturate(round_half_even(x / scale) + zero_point), broadcast, as zero_point's dtype."""
    low, high = QUANTIZED[DType.from_numpy(zero_point.dtype)]
    value = np.rint(x / scale) + zero_point.astype(np.float32)
    return np.clip(value, low, high).astype(zero_point.dtype)
