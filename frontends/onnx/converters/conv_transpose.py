"""ConvTranspose as a direct convolution: the input with stride-1 zeros inserted between its
elements, padded by (effective kernel - 1 - pad), convolved with the flipped kernel whose
input/output channel roles are swapped per group. 1-D runs as 2-D over a unit height."""

from __future__ import annotations

from ..registry import converter
from .common import drop_1d, ints, lift_1d, reshape
from .conv3d import conv3d_unit_stride


def _zero_insert(ctx, x, strides):
    """[N, C, H, W] -> [N, C, (H-1)*sh+1, (W-1)*sw+1] with x at every stride-th place."""
    n, c, h, w = x.shape
    sh, sw = strides
    if (sh, sw) == (1, 1):
        return x
    y = reshape(ctx, x, (n, c, h, 1, w, 1))
    y = ctx.emit("pad", [y], pads=(0, 0, 0, 0, 0, 0, 0, 0, 0, sh - 1, 0, sw - 1),
                 mode="constant", value=0.0)
    y = reshape(ctx, y, (n, c, h * sh, w * sw))
    return ctx.emit("slice", [y], starts=(0, 0, 0, 0),
                    ends=(n, c, (h - 1) * sh + 1, (w - 1) * sw + 1), steps=(1, 1, 1, 1))


def _flipped_weight(ctx, w, group):
    """[Cin, Cout/g, kh, kw] -> [Cout, Cin/g, kh, kw], spatially flipped."""
    cin, cout_g, kh, kw = w.shape
    y = reshape(ctx, w, (group, cin // group, cout_g, kh, kw))
    y = ctx.emit("transpose", [y], perm=(0, 2, 1, 3, 4))
    y = reshape(ctx, y, (group * cout_g, cin // group, kh, kw))
    return ctx.emit("slice", [y], starts=(0, 0, kh - 1, kw - 1),
                    ends=(group * cout_g, cin // group, -1, -1), steps=(1, 1, -1, -1))


def _zero_insert_nd(ctx, x, strides):
    """[N, C, *S] -> [N, C, *((S-1)*s+1)] with x at every stride-th place, any rank."""
    if all(s == 1 for s in strides):
        return x
    n, c, *sizes = x.shape
    spread = reshape(ctx, x, (n, c) + tuple(v for size in sizes for v in (size, 1)))
    rank = len(spread.shape)
    ends = [0, 0] + [v for s in strides for v in (0, s - 1)]
    spread = ctx.emit("pad", [spread], pads=(0,) * rank + tuple(ends), mode="constant",
                      value=0.0)
    spread = reshape(ctx, spread, (n, c) + tuple(size * s for size, s in zip(sizes, strides)))
    kept = (n, c) + tuple((size - 1) * s + 1 for size, s in zip(sizes, strides))
    return ctx.emit("slice", [spread], starts=(0,) * len(kept), ends=kept,
                    steps=(1,) * len(kept))


def _flipped_weight_nd(ctx, w, group):
    """[Cin, Cout/g, *k] -> [Cout, Cin/g, *k], spatially flipped, any rank."""
    cin, cout_g, *kernel = w.shape
    y = reshape(ctx, w, (group, cin // group, cout_g, *kernel))
    y = ctx.emit("transpose", [y], perm=(0, 2, 1) + tuple(range(3, 3 + len(kernel))))
    y = reshape(ctx, y, (group * cout_g, cin // group, *kernel))
    return ctx.emit("slice", [y], starts=(0, 0) + tuple(k - 1 for k in kernel),
                    ends=(group * cout_g, cin // group) + (-1,) * len(kernel),
                    steps=(1, 1) + (-1,) * len(kernel))


def _conv_transpose_3d(ctx, x, w, b, strides, dilations, effective, begin, end, out_pad,
                       group):
    """ConvTranspose over [N, C, D, H, W]: zeros inserted, padded, then a unit-stride 3-D
    convolution with the flipped kernel (as depth-tap 2-D convolutions)."""
    z = _zero_insert_nd(ctx, x, strides)
    pad_begin = [e - 1 - p for e, p in zip(effective, begin)]
    pad_end = [e - 1 - p + op for e, p, op in zip(effective, end, out_pad)]
    if min(pad_begin + pad_end) < 0:
        ctx.fail("ConvTranspose pads larger than the dilated kernel are not supported in 3-D")
    if any(pad_begin) or any(pad_end):
        z = ctx.emit("pad", [z], pads=(0, 0, *pad_begin, 0, 0, *pad_end), mode="constant",
                     value=0.0)
    bias = reshape(ctx, b, (b.type.numel,)) if b is not None else None
    return conv3d_unit_stride(ctx, z, _flipped_weight_nd(ctx, w, group), bias,
                              tuple(dilations), group)


@converter("ConvTranspose", since=1)
def conv_transpose(ctx, x, w, b=None, auto_pad="NOTSET", dilations=None, group=1,
                   kernel_shape=None, output_padding=None, output_shape=None, pads=None,
                   strides=None):
    rank = x.type.rank - 2
    if rank not in (1, 2, 3):
        ctx.fail(f"{rank}-D ConvTranspose is not supported", "Kiln supports 1-D to 3-D")
    if w.type.rank != x.type.rank or w.shape[0] != x.shape[1] or x.shape[1] % group:
        ctx.fail(f"weight {w.shape} does not fit input {x.shape} with group {group}")
    kernel = ints(kernel_shape) if kernel_shape is not None else tuple(w.shape[2:])
    strides = ints(strides) if strides else (1,) * rank
    dilations = ints(dilations) if dilations else (1,) * rank
    out_pad = ints(output_padding) if output_padding else (0,) * rank
    sizes = x.shape[2:]
    effective = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    full = [s * (i - 1) + op + e for s, i, op, e in zip(strides, sizes, out_pad, effective)]
    if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        target = ints(output_shape)[-rank:] if output_shape is not None else \
            tuple(i * s for i, s in zip(sizes, strides))
        begin, end = [], []
        for total in (f - t for f, t in zip(full, target)):
            small, large = total // 2, total - total // 2
            first = small if auto_pad == "SAME_UPPER" else large   # as the reference does
            begin.append(first)
            end.append(total - first)
    elif auto_pad in ("NOTSET", "", "VALID"):
        given = ints(pads) if pads is not None and auto_pad != "VALID" else (0,) * (2 * rank)
        begin, end = list(given[:rank]), list(given[rank:])
    else:
        ctx.fail(f"auto_pad '{auto_pad}' is not a valid value")
    if rank == 3:
        return _conv_transpose_3d(ctx, x, w, b, strides, dilations, effective, begin, end,
                                  out_pad, int(group))
    if rank == 1:
        kernel, strides, dilations = (1,) + kernel, (1,) + strides, (1,) + dilations
        effective, begin, end, out_pad = [1] + effective, [0] + begin, [0] + end, \
            (0,) + out_pad
    lifted = rank == 1
    x2, w2 = lift_1d(ctx, x), lift_1d(ctx, w)
    z = _zero_insert(ctx, x2, strides)
    pad_begin = [e - 1 - p for e, p in zip(effective, begin)]
    pad_end = [e - 1 - p + op for e, p, op in zip(effective, end, out_pad)]
    if any(pad_begin) or any(pad_end):
        z = ctx.emit("pad", [z], pads=(0, 0, pad_begin[0], pad_begin[1], 0, 0, pad_end[0],
                                       pad_end[1]), mode="constant", value=0.0)
    inputs = [z, _flipped_weight(ctx, w2, int(group))]
    if b is not None:
        inputs.append(reshape(ctx, b, (b.type.numel,)))
    y = ctx.emit("conv2d", inputs, strides=(1, 1), pads=(0, 0, 0, 0),
                 dilations=tuple(dilations), group=int(group))
    return drop_1d(ctx, y, lifted)
