"""Integer and quantized linear algebra: MatMulInteger, ConvInteger, QLinearMatMul,
QLinearConv onto the integer IR ops qmatmul / qconv2d (compiler/ops/quantized.py), and
DynamicQuantizeLinear as elementwise IR.

DESIGN: the integer ops keep the 8-bit weight as it is (the artifact stores it 8-bit) and
take the zero points, bias and combined scale (x_scale * w_scale / y_scale, in float32 as
ONNX Runtime computes it) as per-column constants, so the requantize is the kernel's
epilogue. A zero point of A computed at run time (DynamicQuantizeLinear's) is qmatmul's
run-time input; for ConvInteger the input is padded with it and qconv2d runs with zero point
0, its share (zero point times the weight's per-channel sum) subtracted after. Where another
zero point or a scale is computed at run time, or the operands do not fit the ops' forms (a
per-row zero point of A, a 1-D or batched B), the node is decomposed instead: inputs widened to int32, zero points subtracted, an exact int32 matmul/conv2d and
an elementwise requantize in float64 (ONNX's reference multiplies the int32 accumulator by
the scale ratio in numpy, which promotes to float64).
"""

from __future__ import annotations

import numpy as np

from ....compiler.dtypes import DType
from ....compiler.ir import Value
from ..registry import converter
from .common import drop_1d, lift_1d, reshape, spatial_attrs
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


def _known(value: Value | None) -> np.ndarray | None:
    """The compile-time contents of an optional input (None: absent or computed)."""
    return value.data if value is not None and value.is_constant else None


def _scalar(ctx, value: Value | None, like: Value, what: str) -> int | None:
    """A constant per-tensor zero point as an int (0 when absent; None: not constant or
    not per tensor, so the node is decomposed)."""
    if value is None:
        return 0
    if value.dtype != like.dtype:
        ctx.fail(f"{what} of dtype {value.dtype.name} does not match its input's "
                 f"{like.dtype.name}")
    data = _known(value)
    if data is None or data.size != 1:
        return None
    return int(data.reshape(()))


def _per_column(value: np.ndarray | None, columns: int, dtype) -> np.ndarray | None:
    """A per-tensor or per-column constant as one value per column (None: neither)."""
    if value is None or value.size not in (1, columns) or value.ndim > 1:
        return None
    return np.ascontiguousarray(np.broadcast_to(value.reshape(-1), (columns,)), dtype)


def _column_zero_points(ctx, zero_point: Value | None, like: Value, columns: int
                        ) -> np.ndarray | None:
    if zero_point is None:
        return np.zeros(columns, np.int32)
    if zero_point.dtype != like.dtype:
        ctx.fail(f"zero point of dtype {zero_point.dtype.name} does not match its input's "
                 f"{like.dtype.name}")
    return _per_column(_known(zero_point), columns, np.int32)


def _combined_scale(a_scale: Value, b_scale: Value, y_scale: Value | None, columns: int
                    ) -> np.ndarray | None:
    """a_scale * b_scale [/ y_scale] per column in float32 (ONNX Runtime's order), or None
    where a scale is computed at run time or not per tensor / per column."""
    a, b = _known(a_scale), _known(b_scale)
    y = _known(y_scale) if y_scale is not None else np.float32(1)
    if a is None or b is None or y is None or a.size != 1 or y.size != 1:
        return None
    b = _per_column(b, columns, np.float32)
    if b is None:
        return None
    scale = np.float32(a.reshape(())) * b
    return scale if y_scale is None else scale / np.float32(y.reshape(()))


def _integer_op(ctx, op: str, a: Value, b: Value, a_zero: int | Value, b_zero: np.ndarray,
                out: DType, bias: np.ndarray | None = None, scale: np.ndarray | None = None,
                y_zero: int = 0, a_scale: Value | None = None, **attrs) -> Value:
    """qmatmul / qconv2d with its per-column constants; a Value `a_zero` (and `a_scale`)
    is A's run-time zero point (and scale). The bias is int32 unless the output is float32
    and the bias given is float."""
    inputs = [a, b, ctx.const(b_zero, np.int32, f"{ctx.name}_b_zero_point")]
    if out is not DType.int32:
        columns = b_zero.shape[0]
        if bias is None:
            bias = np.zeros(columns, np.float32 if out is DType.float32 else np.int32)
        elif out is not DType.float32 or bias.dtype != np.int32:
            bias = bias.astype(np.float32 if out is DType.float32 else np.int32)
        inputs += [ctx.const(bias, bias.dtype, f"{ctx.name}_bias"),
                   ctx.const(scale, np.float32, f"{ctx.name}_scale")]
    if isinstance(a_zero, Value):
        inputs.append(a_zero)
        if a_scale is not None:
            inputs.append(a_scale)
        a_zero = None
    extra = {"y_zero_point": y_zero} if out in (DType.int8, DType.uint8) else {}
    return ctx.emit(op, inputs, a_zero_point=a_zero, out=out.name, **extra, **attrs)


def _a_zero_point(ctx, value: Value | None, like: Value) -> int | Value | None:
    """A's zero point for qmatmul: an int where it is a constant, the one-element Value
    itself where it is computed at run time (DynamicQuantizeLinear's), None where it is
    neither (a per-row zero point: the node is decomposed)."""
    zero = _scalar(ctx, value, like, "a_zero_point")
    if zero is not None or value.type.numel != 1:
        return zero
    return value


def _matmul_form(a: Value, b: Value) -> bool:
    """Whether qmatmul takes these operands: A of rank >= 2, a 2-D B."""
    return a.type.rank >= 2 and b.type.rank == 2


@converter("MatMulInteger", since=10)
def matmul_integer(ctx, a, b, a_zero_point=None, b_zero_point=None):
    if _matmul_form(a, b):
        a_zero = _a_zero_point(ctx, a_zero_point, a)
        b_zero = _column_zero_points(ctx, b_zero_point, b, b.shape[1])
        if a_zero is not None and b_zero is not None:
            return _integer_op(ctx, "qmatmul", a, b, a_zero, b_zero, DType.int32)
    a32 = _widen(ctx, a, a_zero_point, _per_row(a, a_zero_point))
    b32 = _widen(ctx, b, b_zero_point)
    return _matmul(ctx, a32, b32)


@converter("QLinearMatMul", since=10)
def qlinear_matmul(ctx, a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
                   y_zero_point=None):
    out = y_zero_point.dtype if y_zero_point is not None else a.dtype
    if out not in (DType.int8, DType.uint8):
        ctx.fail(f"quantized output dtype {out.name} is not supported (int8 or uint8)")
    if _matmul_form(a, b):
        a_zero = _scalar(ctx, a_zero_point, a, "a_zero_point")
        b_zero = _column_zero_points(ctx, b_zero_point, b, b.shape[1])
        y_zero = _scalar(ctx, y_zero_point, y_zero_point, "y_zero_point") \
            if y_zero_point is not None else 0
        scale = _combined_scale(a_scale, b_scale, y_scale, b.shape[1])
        if None not in (a_zero, y_zero) and b_zero is not None and scale is not None:
            return _integer_op(ctx, "qmatmul", a, b, a_zero, b_zero, out, scale=scale,
                               y_zero=y_zero)
    a32 = _widen(ctx, a, a_zero_point, _per_row(a, a_zero_point))
    b32 = _widen(ctx, b, b_zero_point)
    acc = _matmul(ctx, a32, b32)
    if a_scale.type.numel > 1:   # per-row scales of A
        a_scale = reshape(ctx, a_scale, _per_row(a, a_scale))
    scale = _scale_ratio(ctx, a_scale, b_scale, y_scale)
    if scale.type.numel == 1:
        scale = reshape(ctx, scale, ())
    return _requantize(ctx, acc, scale, y_zero_point, out)


def _qconv(ctx, x, w, x_zero_point, w_zero_point, attrs, out: DType = DType.int32,
           bias: Value | None = None, scales: tuple[Value, Value, Value] | None = None,
           y_zero_point: Value | None = None) -> Value | None:
    """qconv2d for a conv whose zero points (and scales, bias) are constants of the forms it
    takes; None where they are not (the caller decomposes the node)."""
    if x.type.rank not in (3, 4) or x.type.rank != w.type.rank:
        return None
    columns = w.shape[0]
    x_zero = _scalar(ctx, x_zero_point, x, "x_zero_point")
    w_zero = _column_zero_points(ctx, w_zero_point, w, columns)
    y_zero, scale, bias_data = 0, None, None
    if out is not DType.int32:
        y_zero = _scalar(ctx, y_zero_point, y_zero_point, "y_zero_point") \
            if y_zero_point is not None else 0
        scale = _combined_scale(*scales, columns)
        bias_data = _per_column(_known(bias), columns, np.int32) if bias is not None \
            else np.zeros(columns, np.int32)
        if scale is None or bias_data is None:
            return None
    if x_zero is None or w_zero is None or y_zero is None:
        return None
    kernel = attrs.pop("kernel_shape")
    if kernel is not None and tuple(int(k) for k in kernel) != tuple(w.shape[2:]):
        ctx.fail(f"kernel_shape {list(kernel)} disagrees with the weight's "
                 f"{list(w.shape[2:])}")
    window = spatial_attrs(ctx, x, w.shape[2:], attrs["strides"], attrs["pads"],
                           attrs["dilations"], attrs["auto_pad"], "convolution")
    lifted = x.type.rank == 3
    y = _integer_op(ctx, "qconv2d", lift_1d(ctx, x), lift_1d(ctx, w), x_zero, w_zero, out,
                    bias_data, scale, y_zero, strides=window["strides"],
                    pads=window["pads"], dilations=window["dilations"],
                    group=int(attrs["group"]))
    return drop_1d(ctx, y, lifted)


def _conv_int32(ctx, x, w, x_zero_point, w_zero_point, attrs) -> Value:
    """The exact int32 convolution of zero-point-shifted x and w."""
    x32 = _widen(ctx, x, x_zero_point)
    w32 = _widen(ctx, w, w_zero_point, _per_channel(w.type.rank, w_zero_point, 0))
    return _conv(ctx, x32, w32, None, **attrs)


def _run_time_zero_conv(ctx, x, w, x_zero_point, w_zero_point, attrs) -> Value | None:
    """A ConvInteger whose x zero point is computed at run time (DynamicQuantizeLinear's,
    as quantize_dynamic writes CNNs) on qconv2d with the weight still 8-bit:

        conv(x - zx, w - zw) = qconv2d(x padded with zx, w, zw; zero point 0, no pads)
                               - zx * sum(w - zw)[o]

    (padding with zx makes the padded taps add nothing, as ONNX's zero-padded x - zx).
    None where the forms do not fit (the node is decomposed)."""
    if x_zero_point is None or x_zero_point.is_constant or x_zero_point.type.numel != 1 \
            or x.type.rank != 4 or w.type.rank != 4 or not w.is_constant:
        return None
    if x_zero_point.dtype is not x.dtype:
        ctx.fail(f"x_zero_point is {x_zero_point.dtype.name} but x is {x.dtype.name}")
    w_zero = _column_zero_points(ctx, w_zero_point, w, w.shape[0])
    if w_zero is None:
        return None
    kernel = attrs["kernel_shape"]
    if kernel is not None and tuple(int(k) for k in kernel) != tuple(w.shape[2:]):
        ctx.fail(f"kernel_shape {list(kernel)} disagrees with the weight's "
                 f"{list(w.shape[2:])}")
    window = spatial_attrs(ctx, x, w.shape[2:], attrs["strides"], attrs["pads"],
                           attrs["dilations"], attrs["auto_pad"], "convolution")
    zero = reshape(ctx, x_zero_point, ())
    top, left, bottom, right = window["pads"]
    padded = x
    if any(window["pads"]):
        padded = ctx.emit("pad", [x], pads=(0, 0, top, left, 0, 0, bottom, right))
        border = np.pad(np.zeros((1, 1) + x.shape[2:], bool),
                        ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=True)
        padded = ctx.emit("where", [ctx.const(border), zero, padded])
    acc = _integer_op(ctx, "qconv2d", padded, w, 0, w_zero, DType.int32,
                      strides=window["strides"], pads=(0, 0, 0, 0),
                      dilations=window["dilations"], group=int(attrs["group"]))
    sums = (w.data.astype(np.int64) - w_zero.reshape(-1, 1, 1, 1)).sum(axis=(1, 2, 3))
    correction = ctx.emit("mul", [ctx.emit("cast", [zero], to=DType.int32),
                                  ctx.const(sums.astype(np.int32).reshape(1, -1, 1, 1))])
    return ctx.emit("sub", [acc, correction])


@converter("ConvInteger", since=10)
def conv_integer(ctx, x, w, x_zero_point=None, w_zero_point=None, auto_pad="NOTSET",
                 dilations=None, group=1, kernel_shape=None, pads=None, strides=None):
    attrs = dict(auto_pad=auto_pad, dilations=dilations, group=group,
                 kernel_shape=kernel_shape, pads=pads, strides=strides)
    y = _qconv(ctx, x, w, x_zero_point, w_zero_point, dict(attrs))
    if y is None:
        y = _run_time_zero_conv(ctx, x, w, x_zero_point, w_zero_point, attrs)
    return y if y is not None else _conv_int32(ctx, x, w, x_zero_point, w_zero_point, attrs)


@converter("QLinearConv", since=10)
def qlinear_conv(ctx, x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
                 y_zero_point=None, b=None, auto_pad="NOTSET", dilations=None, group=1,
                 kernel_shape=None, pads=None, strides=None):
    out = y_zero_point.dtype if y_zero_point is not None else x.dtype
    if out not in (DType.int8, DType.uint8):
        ctx.fail(f"quantized output dtype {out.name} is not supported (int8 or uint8)")
    attrs = dict(auto_pad=auto_pad, dilations=dilations, group=group,
                 kernel_shape=kernel_shape, pads=pads, strides=strides)
    y = _qconv(ctx, x, w, x_zero_point, w_zero_point, dict(attrs), out, b,
               (x_scale, w_scale, y_scale), y_zero_point)
    if y is not None:
        return y
    acc = _conv_int32(ctx, x, w, x_zero_point, w_zero_point, attrs)
    if b is not None:
        bias = ctx.emit("cast", [b], to=DType.int32)
        acc = ctx.emit("add", [acc, reshape(ctx, bias, _per_channel(acc.type.rank, b, 1))])
    if w_scale.type.numel > 1:
        w_scale = reshape(ctx, w_scale, _per_channel(acc.type.rank, w_scale, 1))
    elif w_scale.type.rank:
        w_scale = reshape(ctx, w_scale, ())
    scale = _scale_ratio(ctx, x_scale, w_scale, y_scale)
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
