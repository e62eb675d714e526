"""Linear quantization: DequantizeLinear and QuantizeLinear as elementwise IR ops.

    DequantizeLinear: y = (float(x) - float(zero_point)) * scale
    QuantizeLinear:   y = saturate(round_half_even(x / scale) + zero_point)   (integer targets)
                      y = cast(x / scale + zero_point, saturate)             (float8/float4)

Scales and zero points are per tensor, per axis (opset 13) or per block of `block_size`
elements along `axis` (opset 21: same rank as x, ceil(n / block_size) along axis; each is
repeated over its block with a gather). Quantized values may be any integer type down to
int4/int2, or float8/float4 (storage types: converted through dtype_cast). With constant
inputs (weights, as quantized exporters store them) everything folds at compile time; with
run-time inputs it is ordinary elementwise code.

The 8-bit forms QDQ models use (int8/uint8, or an int32 bias, with float32 scales, per
tensor or per axis) become the IR ops `dequantize` / `quantize` (compiler/ops/qdq.py), which
the QDQ pass reads; a constant weight's dequantize is not folded at import, so it reaches
that pass 8-bit.
"""

from __future__ import annotations

import numpy as np

from ....compiler.dtypes import DType
from ....compiler.ops.qdq import DEQUANTIZED, QUANTIZED
from ..registry import converter
from .common import axis_of, reshape
from .dtype_cast import convert_to

#: integer targets of QuantizeLinear and their ranges
_RANGES = {DType.int8: (-128, 127), DType.uint8: (0, 255), DType.int16: (-32768, 32767),
           DType.uint16: (0, 65535), DType.int4: (-8, 7), DType.uint4: (0, 15),
           DType.int2: (-2, 1), DType.uint2: (0, 3)}
_FLOAT_TARGETS = (DType.float8e4m3fn, DType.float8e4m3fnuz, DType.float8e5m2,
                  DType.float8e5m2fnuz, DType.float4e2m1)


def _broadcastable(ctx, param, x, axis: int, block_size: int):
    """`param` (a scale or zero point, already in a compute type) shaped to broadcast
    against x: per tensor, per `axis`, or per block of `block_size` along `axis`."""
    if block_size:
        return _blocked(ctx, param, x, axis, block_size)
    if param.type.rank == 0 or (param.type.rank == 1 and param.shape[0] == 1):
        return reshape(ctx, param, ())
    if param.type.rank != 1:
        ctx.fail(f"scale/zero_point of rank {param.type.rank} needs block_size (blocked "
                 f"quantization); without it they must be scalars or 1-D")
    axis = axis_of(ctx, axis, x.type.rank)
    if param.shape[0] != x.shape[axis]:
        ctx.fail(f"{param.shape[0]} scales for axis {axis} of size {x.shape[axis]}")
    shape = [1] * x.type.rank
    shape[axis] = param.shape[0]
    return reshape(ctx, param, shape)


def _blocked(ctx, param, x, axis: int, block_size: int):
    if block_size < 0:
        ctx.fail(f"block_size must be positive, not {block_size}")
    axis = axis_of(ctx, axis, x.type.rank)
    size = x.shape[axis]
    blocks = -(-size // block_size)
    expected = list(x.shape)
    expected[axis] = blocks
    if list(param.shape) != expected:
        ctx.fail(f"blocked quantization with block_size {block_size} along axis {axis} needs "
                 f"scale/zero_point of shape {tuple(expected)}, not {tuple(param.shape)}")
    indices = ctx.const(np.arange(size, dtype=np.int64) // block_size)
    return ctx.emit("gather", [param, indices], axis=axis)


@converter("DequantizeLinear", since=10)
def dequantize_linear(ctx, x, x_scale, x_zero_point=None, axis=1, block_size=0,
                      output_dtype=0):
    if output_dtype and DType.from_onnx(int(output_dtype)) is not x_scale.dtype:
        ctx.fail("output_dtype must be the scale's dtype")
    if not x_scale.dtype.is_float:
        ctx.fail(f"scale must be a float16/32/64 tensor, not {x_scale.dtype.name}")
    if x_zero_point is not None and x_zero_point.dtype is not x.dtype:
        ctx.fail(f"zero_point is {x_zero_point.dtype.name} but x is {x.dtype.name}")
    block_size = int(block_size)
    scale = _broadcastable(ctx, x_scale, x, axis, block_size)
    if x.dtype in DEQUANTIZED and scale.dtype is DType.float32 and not block_size:
        zero = _broadcastable(ctx, x_zero_point, x, axis, 0) if x_zero_point is not None \
            else ctx.const(np.zeros((), x.dtype.numpy))
        return ctx.emit("dequantize", [x, scale, zero])
    y = convert_to(ctx, x, scale.dtype)
    if x_zero_point is not None:
        zero = _broadcastable(ctx, convert_to(ctx, x_zero_point, x_zero_point.dtype.compute),
                              x, axis, block_size)
        y = ctx.emit("sub", [y, convert_to(ctx, zero, scale.dtype)])
    return ctx.emit("mul", [y, scale])


@converter("QuantizeLinear", since=10)
def quantize_linear(ctx, x, y_scale, y_zero_point=None, axis=1, saturate=1, block_size=0,
                    output_dtype=0, precision=0):
    """precision (opset 25) names the type of x / scale; Kiln divides in x's type."""
    if y_zero_point is not None:
        target = y_zero_point.dtype
        if output_dtype and DType.from_onnx(int(output_dtype)) is not target:
            ctx.fail("output_dtype differs from the zero point's dtype")
    elif output_dtype:
        target = DType.from_onnx(int(output_dtype))
    else:
        target = DType.uint8
    if target not in _RANGES and target not in _FLOAT_TARGETS:
        ctx.fail(f"QuantizeLinear to {target.name} is not supported",
                 "quantize to an 8/16/4/2-bit integer, float8 or float4e2m1 type")
    if not x.dtype.is_float:
        ctx.fail(f"QuantizeLinear's x must be float16/32/64, not {x.dtype.name}")
    block_size = int(block_size)
    scale = convert_to(ctx, _broadcastable(ctx, y_scale, x, axis, block_size), x.dtype)
    if target in QUANTIZED and x.dtype is DType.float32 and not block_size:
        zero = _broadcastable(ctx, y_zero_point, x, axis, 0) if y_zero_point is not None \
            else ctx.const(np.zeros((), target.numpy))
        return ctx.emit("quantize", [x, scale, zero])
    y = ctx.emit("div", [x, scale])
    if target in _RANGES:
        y = ctx.emit("round", [y])
    if y_zero_point is not None:
        zero = _broadcastable(ctx, convert_to(ctx, y_zero_point, target.compute), x, axis,
                              block_size)
        y = ctx.emit("add", [y, convert_to(ctx, zero, x.dtype)])
    if target in _FLOAT_TARGETS:
        return convert_to(ctx, y, target, saturate)
    low, high = _RANGES[target]
    y = ctx.emit("clip", [y], min=float(low), max=float(high))
    return convert_to(ctx, y, target)
