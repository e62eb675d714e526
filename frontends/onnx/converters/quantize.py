"""Linear quantization: DequantizeLinear and QuantizeLinear as float elementwise IR ops.

    DequantizeLinear: y = (float(x) - float(zero_point)) * scale
    QuantizeLinear:   y = saturate(round_half_even(x / scale) + zero_point)

Per-tensor and per-axis scales (opset 13); blocked quantization (opset 21's block_size) is
refused. With constant inputs (int8 weights, as quantized exporters store them) everything
folds at compile time to float32 weights; with run-time inputs it is ordinary elementwise code.
"""

from __future__ import annotations

from ....compiler.dtypes import DType
from ..registry import converter
from .common import axis_of, reshape

_RANGES = {DType.int8: (-128, 127), DType.uint8: (0, 255), DType.int32: None}


def _per_axis(ctx, param, x, axis: int):
    """`param` (a scale or zero point) shaped to broadcast against x along `axis`."""
    if param.type.rank == 0 or (param.type.rank == 1 and param.shape[0] == 1):
        return reshape(ctx, param, ())
    if param.type.rank != 1:
        ctx.fail(f"scale/zero_point of rank {param.type.rank} (blocked quantization) is not "
                 f"supported")
    axis = axis_of(ctx, axis, x.type.rank)
    if param.shape[0] != x.shape[axis]:
        ctx.fail(f"{param.shape[0]} scales for axis {axis} of size {x.shape[axis]}")
    shape = [1] * x.type.rank
    shape[axis] = param.shape[0]
    return reshape(ctx, param, shape)


def _check_block(ctx, block_size) -> None:
    if block_size:
        ctx.fail(f"blocked quantization (block_size={block_size}) is not supported")


@converter("DequantizeLinear", since=10)
def dequantize_linear(ctx, x, x_scale, x_zero_point=None, axis=1, block_size=0,
                      output_dtype=0):
    _check_block(ctx, block_size)
    if output_dtype and DType.from_onnx(int(output_dtype)) is not x_scale.dtype:
        ctx.fail("output_dtype must be the scale's dtype")
    if not x_scale.dtype.is_float:
        ctx.fail(f"scale must be a float tensor, not {x_scale.dtype.name}")
    scale = _per_axis(ctx, x_scale, x, axis)
    y = x if x.dtype is scale.dtype else ctx.emit("cast", [x], to=scale.dtype)
    if x_zero_point is not None:
        zero = _per_axis(ctx, x_zero_point, x, axis)
        zero = ctx.emit("cast", [zero], to=scale.dtype)
        y = ctx.emit("sub", [y, zero])
    return ctx.emit("mul", [y, scale])


@converter("QuantizeLinear", since=10)
def quantize_linear(ctx, x, y_scale, y_zero_point=None, axis=1, saturate=1, block_size=0,
                    output_dtype=0, precision=0):
    _check_block(ctx, block_size)
    if y_zero_point is not None:
        target = y_zero_point.dtype
    elif output_dtype:
        target = DType.from_onnx(int(output_dtype))
    else:
        target = DType.uint8
    if target not in _RANGES or _RANGES[target] is None:
        ctx.fail(f"QuantizeLinear to {target.name} is not supported", "use int8 or uint8")
    low, high = _RANGES[target]
    scale = _per_axis(ctx, y_scale, x, axis)
    if scale.dtype is not x.dtype:
        scale = ctx.emit("cast", [scale], to=x.dtype)
    y = ctx.emit("round", [ctx.emit("div", [x, scale])])
    if y_zero_point is not None:
        zero = ctx.emit("cast", [_per_axis(ctx, y_zero_point, x, axis)], to=x.dtype)
        y = ctx.emit("add", [y, zero])
    y = ctx.emit("clip", [y], min=float(low), max=float(high))
    return ctx.emit("cast", [y], to=target)
