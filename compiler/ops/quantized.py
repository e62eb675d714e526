"""Integer matmul and conv over 8-bit operands, with the zero points, bias and requantize of
ONNX's quantized ops fused in (QLinearConv, QLinearMatMul, MatMulInteger, ConvInteger).

    acc[m, n] = sum_k (a[m, k] - a_zero_point) * (b[k, n] - b_zero_point[n])      (int32)
    out="int32":          y = acc
    out="int8"/"uint8":   y = saturate(round_half_even(float32(acc + bias[n]) * scale[n])
                                       + y_zero_point)
    relu:                 y = max(y, y_zero_point) (8-bit), max(y, 0) (float32): a Relu
                          before the quantize (its zero is y_zero_point)
    out="float32":        y = float32(acc) * scale[n] + bias[n]        (float32 bias)
                          y = float32(acc + bias[n]) * scale[n]        (int32 bias)

a and b are int8 or uint8 (the weight b stays 8-bit in the artifact); b_zero_point, bias
and scale are per output column (per output channel for qconv2d: a per-tensor value is
repeated by the importer). `scale` is what multiplies the accumulator: a_scale * b_scale /
y_scale for an 8-bit result, a_scale * b_scale for a float one. The requantize multiplies
in float32 and rounds half to even, as ONNX Runtime's kernels do (MLAS): float32(acc) is
itself rounded where |acc| > 2^24.

Inputs: (a, b, b_zero_point) for out="int32", (a, b, b_zero_point, bias, scale) otherwise;
a_zero_point and y_zero_point are integer attributes where they are constants.

Run-time activation quantization (DynamicQuantizeLinear before a MatMulInteger, ONNX
Runtime's MatMulIntegerToFloat): qmatmul with a_zero_point=None takes A's zero point as
one more input, a one-element tensor of A's dtype, and for out="float32" A's scale after it
(one float32), which multiplies the per-column scale in float32 as ONNX Runtime does:

    y = float32(acc) * (a_scale * scale[n]) + bias[n]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import DType
from ..errors import ShapeError
from ..ir import TensorType
from .nn import _channels_last, _conv_type, conv2d
from .registry import register

#: the result dtype of each `out`
OUTPUTS = {"int32": DType.int32, "int8": DType.int8, "uint8": DType.uint8,
           "float32": DType.float32}
EIGHT_BIT = (DType.int8, DType.uint8)


def run_time_inputs(attrs: dict[str, Any]) -> int:
    """How many run-time quantization inputs follow the per-column ones: 0 (a_zero_point
    is an attribute), 1 (A's zero point) or 2 (A's zero point and scale)."""
    if attrs["a_zero_point"] is not None:
        return 0
    return 1 if attrs["out"] == "int32" else 2


def _check(types: list[TensorType], attrs: dict[str, Any], columns: int) -> TensorType:
    out = attrs["out"]
    if out not in OUTPUTS:
        raise ShapeError(f"quantized op output {out!r} is not one of {', '.join(OUTPUTS)}")
    a, b, zero = types[:3]
    if a.dtype not in EIGHT_BIT or b.dtype not in EIGHT_BIT:
        raise ShapeError(f"quantized operands must be int8 or uint8, not {a.dtype.name} and "
                         f"{b.dtype.name}")
    dynamic = run_time_inputs(attrs)
    if dynamic and out not in ("int32", "float32"):
        raise ShapeError(f"a run-time zero point of A needs out int32 or float32, not {out}")
    expected = (3 if out == "int32" else 5) + dynamic
    if len(types) != expected:
        raise ShapeError(f"a quantized op with out={out} takes {expected} inputs, not "
                         f"{len(types)}")
    per_column = types[2:len(types) - dynamic]
    for t, what in zip(per_column, ("b_zero_point", "bias", "scale")):
        if t.shape != (columns,):
            raise ShapeError(f"{what} must have one value per output column ({columns}), "
                             f"not shape {t.shape}")
    if zero.dtype is not DType.int32:
        raise ShapeError(f"b_zero_point must be int32 (the kernels read it as such), not "
                         f"{zero.dtype.name}")
    if out != "int32" and per_column[1].dtype not in (DType.int32, DType.float32):
        raise ShapeError(f"bias must be int32 or float32, not {per_column[1].dtype.name}")
    if out != "int32" and per_column[2].dtype is not DType.float32:
        raise ShapeError(f"scale must be float32, not {per_column[2].dtype.name}")
    for t, what, dtype in zip(types[len(types) - dynamic:], ("a_zero_point", "a_scale"),
                              (a.dtype, DType.float32)):
        if t.numel != 1 or t.dtype is not dtype:
            raise ShapeError(f"run-time {what} must be one {dtype.name} value, not "
                             f"{t.dtype.name} of shape {t.shape}")
    return TensorType(OUTPUTS[out], ())


def _finish(acc: np.ndarray, rest: tuple, out: str, y_zero_point: int, column_axis: int,
            relu: bool) -> np.ndarray:
    """The requantize / dequantize epilogue on an int64 accumulator."""
    acc = acc.astype(np.int32)
    if out == "int32":
        return acc
    bias, scale = rest[:2]
    shape = [1] * acc.ndim
    shape[column_axis] = -1
    bias, scale = bias.reshape(shape), scale.astype(np.float32).reshape(shape)
    if len(rest) == 3:   # A's run-time scale
        scale = np.float32(rest[2].reshape(())) * scale
    if out == "float32":
        if bias.dtype == np.int32:
            y = (acc + bias).astype(np.float32) * scale
        else:
            y = acc.astype(np.float32) * scale + bias.astype(np.float32)
        return np.maximum(y, np.float32(0)) if relu else y
    info = np.iinfo(OUTPUTS[out].numpy)
    value = np.rint((acc + bias.astype(np.int32)).astype(np.float32) * scale)
    low = max(info.min, y_zero_point) if relu else info.min
    return np.clip(value + y_zero_point, low, info.max).astype(OUTPUTS[out].numpy)


def _qmatmul_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    a, b = types[:2]
    if a.rank < 2 or b.rank != 2:
        raise ShapeError(f"qmatmul takes A of rank >= 2 and a 2-D B, not {a.shape} x {b.shape}")
    if a.shape[-1] != b.shape[0]:
        raise ShapeError(f"qmatmul inner dims differ: {a.shape} x {b.shape}")
    dtype = _check(types, attrs, b.shape[1]).dtype
    return [TensorType(dtype, a.shape[:-1] + (b.shape[1],))]


@register("qmatmul", "matmul", _qmatmul_type, pattern="opaque")
def qmatmul(a, b, b_zero_point, *rest, a_zero_point, out, y_zero_point=0, relu=False):
    """A[..., M, K] x B[K, N] over 8-bit operands minus zero points, exact in int32, then the
    requantize (out int8/uint8) or dequantize (out float32) epilogue; A's zero point (and
    scale) come last among the inputs where a_zero_point is None."""
    if a_zero_point is None:
        a_zero_point = int(rest[-1 if out == "int32" else -2].reshape(()))
        rest = rest[:-1] if out == "int32" else rest[:-2] + rest[-1:]
    acc = np.matmul(a.astype(np.int64) - a_zero_point, b.astype(np.int64) - b_zero_point)
    return _finish(acc, rest, out, y_zero_point, -1, relu)


def _qconv_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x, w = types[:2]
    if x.rank != 4 or w.rank != 4:
        raise ShapeError(f"qconv2d takes a 4-D input and OIHW weight, not {x.shape} and "
                         f"{w.shape}")
    if attrs["a_zero_point"] is None:
        raise ShapeError("qconv2d takes its input's zero point as a constant attribute")
    dtype = _check(types, attrs, w.shape[0]).dtype
    (shape,) = _conv_type(types[:2], attrs)
    return [TensorType(dtype, shape.shape)]


@register("qconv2d", "conv", _qconv_type, pattern="opaque")
@_channels_last
def qconv2d(x, w, w_zero_point, *rest, a_zero_point, out, y_zero_point=0, relu=False,
            strides, pads, dilations, group):
    """Grouped 2-D cross-correlation (NCHW input, OIHW weight; NHWC input and output with
    layout="NHWC") over 8-bit operands minus zero points, exact in int32 (padding reads a_zero_point: it adds nothing), then the
    epilogue of `out`."""
    xs = x.astype(np.int64) - a_zero_point
    ws = w.astype(np.int64) - w_zero_point.astype(np.int64).reshape(-1, 1, 1, 1)
    acc = np.rint(conv2d(xs.astype(np.float64), ws.astype(np.float64), strides=strides,
                         pads=pads, dilations=dilations, group=group)).astype(np.int64)
    return _finish(acc, rest, out, y_zero_point, 1, relu)
