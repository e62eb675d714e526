"""Integer and quantized linear algebra: MatMulInteger, ConvInteger, QLinearMatMul,
QLinearConv, DynamicQuantizeLinear, decomposed into IR casts, subs, matmul/conv2d and
elementwise requantization.

DESIGN: the integer products are computed exactly in int32 (inputs widened, zero points
subtracted), as ONNX specifies. Requantization (`int32 * scale + zero_point`, rounded half to
even and saturated) is done in float64: ONNX's reference multiplies the int32 accumulator by
the scale ratio in numpy, which promotes to float64, so float32 would round differently at
exact halves.
"""

from __future__ import annotations

import numpy as np

from ....compiler.dtypes import DType
from ....compiler.ir import Value
from ..registry import converter
from .common import reshape
from .conv import conv as _conv
from .matmul import matmul as _matmul


def _widen(ctx, x: Value, zero_point: Value | None, zp_shape=None) -> Value:
    """x as int32, minus its zero point (reshaped to `zp_shape` when per-channel)."""
    wide = ctx.emit("cast", [x], to=DType.int32)
    if zero_point is None:
        return wide
    if zero_point.dtype != x.dtype:
        ctx.fail(f"zero point of dtype {zero_point.dtype.name} does not match its input's "
                 f"{x.dtype.name}")
    zp = ctx.emit("cast", [zero_point], to=DType.int32)
    if zp_shape is not None and zp.type.numel > 1:
        zp = reshape(ctx, zp, zp_shape)
    elif zp.type.numel == 1:
        zp = reshape(ctx, zp, ())
    return ctx.emit("sub", [wide, zp])


def _per_row(x: Value, zero_point: Value | None):
    """The shape that broadcasts a per-row (dim -2) zero point of MatMulInteger's A."""
    if zero_point is None or zero_point.type.rank != 1 or x.type.rank < 2:
        return None
    return (zero_point.shape[0], 1)


def _per_channel(rank: int, zero_point: Value | None, axis: int):
    """The shape that broadcasts a per-channel vector along `axis` of a rank-`rank` tensor."""
    if zero_point is None or zero_point.type.rank != 1:
        return None
    shape = [1] * rank
    shape[axis] = zero_point.shape[0]
    return tuple(shape)


def _requantize(ctx, acc: Value, scale: Value, y_zero_point: Value | None,
                out: DType) -> Value:
    """saturate(round_half_even(acc * scale + y_zero_point)) as `out`, in float64."""
    if out not in (DType.int8, DType.uint8):
        ctx.fail(f"quantized output dtype {out.name} is not supported (int8 or uint8)")
    value = ctx.emit("mul", [ctx.emit("cast", [acc], to=DType.float64),
                             ctx.emit("cast", [scale], to=DType.float64)])
    if y_zero_point is not None:
        zp = ctx.emit("cast", [y_zero_point], to=DType.float64)
        if zp.type.numel == 1:
            zp = reshape(ctx, zp, ())
        value = ctx.emit("add", [value, zp])
    info = np.iinfo(out.numpy)
    value = ctx.emit("clip", [ctx.emit("round", [value])], min=float(info.min),
                     max=float(info.max))
    return ctx.emit("cast", [value], to=out)


def _scale_ratio(ctx, a_scale: Value, b_scale: Value, y_scale: Value) -> Value:
    """a_scale * b_scale / y_scale, in the scales' own dtype (as ONNX's reference)."""
    return ctx.emit("div", [ctx.emit("mul", [a_scale, b_scale]), y_scale])


@converter("MatMulInteger", since=10)
def matmul_integer(ctx, a, b, a_zero_point=None, b_zero_point=None):
    a32 = _widen(ctx, a, a_zero_point, _per_row(a, a_zero_point))
    b32 = _widen(ctx, b, b_zero_point)
    return _matmul(ctx, a32, b32)


@converter("QLinearMatMul", since=10)
def qlinear_matmul(ctx, a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
                   y_zero_point=None):
    a32 = _widen(ctx, a, a_zero_point, _per_row(a, a_zero_point))
    b32 = _widen(ctx, b, b_zero_point)
    acc = _matmul(ctx, a32, b32)
    if a_scale.type.numel > 1:   # per-row scales of A
        a_scale = reshape(ctx, a_scale, _per_row(a, a_scale))
    scale = _scale_ratio(ctx, a_scale, b_scale, y_scale)
    if scale.type.numel == 1:
        scale = reshape(ctx, scale, ())
    out = y_zero_point.dtype if y_zero_point is not None else a.dtype
    return _requantize(ctx, acc, scale, y_zero_point, out)


def _conv_int32(ctx, x, w, x_zero_point, w_zero_point, attrs) -> Value:
    """The exact int32 convolution of zero-point-shifted x and w."""
    x32 = _widen(ctx, x, x_zero_point)
    w32 = _widen(ctx, w, w_zero_point, _per_channel(w.type.rank, w_zero_point, 0))
    return _conv(ctx, x32, w32, None, **attrs)


@converter("ConvInteger", since=10)
def conv_integer(ctx, x, w, x_zero_point=None, w_zero_point=None, auto_pad="NOTSET",
                 dilations=None, group=1, kernel_shape=None, pads=None, strides=None):
    return _conv_int32(ctx, x, w, x_zero_point, w_zero_point,
                       dict(auto_pad=auto_pad, dilations=dilations, group=group,
                            kernel_shape=kernel_shape, pads=pads, strides=strides))


@converter("QLinearConv", since=10)
def qlinear_conv(ctx, x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
                 y_zero_point=None, b=None, auto_pad="NOTSET", dilations=None, group=1,
                 kernel_shape=None, pads=None, strides=None):
    acc = _conv_int32(ctx, x, w, x_zero_point, w_zero_point,
                      dict(auto_pad=auto_pad, dilations=dilations, group=group,
                           kernel_shape=kernel_shape, pads=pads, strides=strides))
    if b is not None:
        bias = ctx.emit("cast", [b], to=DType.int32)
        acc = ctx.emit("add", [acc, reshape(ctx, bias, _per_channel(acc.type.rank, b, 1))])
    if w_scale.type.numel > 1:
        w_scale = reshape(ctx, w_scale, _per_channel(acc.type.rank, w_scale, 1))
    elif w_scale.type.rank:
        w_scale = reshape(ctx, w_scale, ())
    scale = _scale_ratio(ctx, x_scale, w_scale, y_scale)
    out = y_zero_point.dtype if y_zero_point is not None else x.dtype
    return _requantize(ctx, acc, scale, y_zero_point, out)


@converter("DynamicQuantizeLinear", since=11)
def dynamic_quantize_linear(ctx, x):
    """uint8 quantization with the scale and zero point of x's range (widened to hold 0)."""
    if x.dtype is not DType.float32:
        ctx.fail(f"DynamicQuantizeLinear takes float32, not {x.dtype.name}")
    axes = tuple(range(x.type.rank))
    zero = ctx.const(np.float32(0))
    high = ctx.emit("max", [reshape(ctx, ctx.emit("reduce_max", [x], axes=axes, keepdims=False),
                                    ()), zero])
    low = ctx.emit("min", [reshape(ctx, ctx.emit("reduce_min", [x], axes=axes, keepdims=False),
                                   ()), zero])
    span = ctx.emit("sub", [high, low])
    same = ctx.emit("equal", [high, low])
    span = ctx.emit("where", [same, ctx.const(np.float32(1)), span])
    y_scale = ctx.emit("div", [span, ctx.const(np.float32(255))])
    initial = ctx.emit("sub", [zero, ctx.emit("div", [low, y_scale])])
    zp = ctx.emit("round", [ctx.emit("clip", [initial], min=0.0, max=255.0)])
    y = ctx.emit("add", [ctx.emit("round", [ctx.emit("div", [x, y_scale])]), zp])
    y = ctx.emit("cast", [ctx.emit("clip", [y], min=0.0, max=255.0)], to=DType.uint8)
    return [y, y_scale, ctx.emit("cast", [zp], to=DType.uint8)]
