"""Integer matmul and conv over 8-bit operands, with the zero points, bias and requantize of
ONNX's quantized ops fused in (QLinearConv, QLinearMatMul, MatMulInteger, ConvInteger).

    acc[m, n] = sum_k (a[m, k] - a_zero_point) * (b[k, n] - b_zero_point[n])      (int32)
    out="int32":          y = acc
    out="int8"/"uint8":   y = saturate(round_half_even(float32(acc + bias[n]) * scale[n])
                                       + y_zero_point)
    out="float32":        y = float32(acc) * scale[n] + bias[n]

a and b are int8 or uint8 (the weight b stays 8-bit in the artifact); b_zero_point, bias
and scale are per output column (per output channel for qconv2d: a per-tensor value is
repeated by the importer). `scale` is what multiplies the accumulator: a_scale * b_scale /
y_scale for an 8-bit result, a_scale * b_scale for a float one. The requantize multiplies
in float32 and rounds half to even, as ONNX Runtime's kernels do (MLAS): float32(acc) is
itself rounded where |acc| > 2^24.

Inputs: (a, b, b_zero_point) for out="int32", (a, b, b_zero_point, bias, scale) otherwise;
a_zero_point and y_zero_point are integer attributes (the importer requires them constant).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import DType
from ..errors import ShapeError
from ..ir import TensorType
from .nn import _conv_type, conv2d
from .registry import register

#: the result dtype of each `out`
OUTPUTS = {"int32": DType.int32, "int8": DType.int8, "uint8": DType.uint8,
           "float32": DType.float32}
EIGHT_BIT = (DType.int8, DType.uint8)


def _check(types: list[TensorType], attrs: dict[str, Any], columns: int) -> TensorType:
    out = attrs["out"]
    if out not in OUTPUTS:
        raise ShapeError(f"quantized op output {out!r} is not one of {', '.join(OUTPUTS)}")
    a, b, zero = types[:3]
    if a.dtype not in EIGHT_BIT or b.dtype not in EIGHT_BIT:
        raise ShapeError(f"quantized operands must be int8 or uint8, not {a.dtype.name} and "
                         f"{b.dtype.name}")
    expected = 3 if out == "int32" else 5
    if len(types) != expected:
        raise ShapeError(f"a quantized op with out={out} takes {expected} inputs, not "
                         f"{len(types)}")
    for t, what in zip(types[2:], ("b_zero_point", "bias", "scale")):
        if t.shape != (columns,):
            raise ShapeError(f"{what} must have one value per output column ({columns}), "
                             f"not shape {t.shape}")
    return TensorType(OUTPUTS[out], ())


def _finish(acc: np.ndarray, rest: tuple, out: str, y_zero_point: int, column_axis: int
            ) -> np.ndarray:
    """The requantize / dequantize epilogue on an int64 accumulator."""
    acc = acc.astype(np.int32)
    if out == "int32":
        return acc
    bias, scale = rest
    shape = [1] * acc.ndim
    shape[column_axis] = -1
    bias, scale = bias.reshape(shape), scale.astype(np.float32).reshape(shape)
    if out == "float32":
        return acc.astype(np.float32) * scale + bias.astype(np.float32)
    info = np.iinfo(OUTPUTS[out].numpy)
    value = np.rint((acc + bias.astype(np.int32)).astype(np.float32) * scale)
    return np.clip(value + y_zero_point, info.min, info.max).astype(OUTPUTS[out].numpy)


def _qmatmul_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    a, b = types[:2]
    if a.rank < 2 or b.rank != 2:
        raise ShapeError(f"qmatmul takes A of rank >= 2 and a 2-D B, not {a.shape} x {b.shape}")
    if a.shape[-1] != b.shape[0]:
        raise ShapeError(f"qmatmul inner dims differ: {a.shape} x {b.shape}")
    dtype = _check(types, attrs, b.shape[1]).dtype
    return [TensorType(dtype, a.shape[:-1] + (b.shape[1],))]


@register("qmatmul", "matmul", _qmatmul_type, pattern="opaque")
def qmatmul(a, b, b_zero_point, *rest, a_zero_point, out, y_zero_point=0):
    """A[..., M, K] x B[K, N] over 8-bit operands minus zero points, exact in int32, then the
    requantize (out int8/uint8) or dequantize (out float32) epilogue."""
    acc = np.matmul(a.astype(np.int64) - a_zero_point, b.astype(np.int64) - b_zero_point)
    return _finish(acc, rest, out, y_zero_point, -1)


def _qconv_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x, w = types[:2]
    if x.rank != 4 or w.rank != 4:
        raise ShapeError(f"qconv2d takes NCHW input and OIHW weight, not {x.shape} and "
                         f"{w.shape}")
    dtype = _check(types, attrs, w.shape[0]).dtype
    (shape,) = _conv_type(types[:2], attrs)
    return [TensorType(dtype, shape.shape)]


@register("qconv2d", "conv", _qconv_type, pattern="opaque", layout_rule="fixed")
def qconv2d(x, w, w_zero_point, *rest, a_zero_point, out, y_zero_point=0, strides, pads,
            dilations, group):
    """Grouped 2-D cross-correlation (NCHW input, OIHW weight) over 8-bit operands minus
    zero points, exact in int32 (padding reads a_zero_point: it adds nothing), then the
    epilogue of `out`."""
    xs = x.astype(np.int64) - a_zero_point
    ws = w.astype(np.int64) - w_zero_point.astype(np.int64).reshape(-1, 1, 1, 1)
    acc = np.rint(conv2d(xs.astype(np.float64), ws.astype(np.float64), strides=strides,
                         pads=pads, dilations=dilations, group=group)).astype(np.int64)
    return _finish(acc, rest, out, y_zero_point, 1)
