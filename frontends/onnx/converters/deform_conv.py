"""DeformConv (2-D): each kernel tap samples the input bilinearly at its regular position plus
a run-time offset (zero outside the image), optionally scaled by a mask; the sampled columns
then meet the weight in one matmul per group.

The four corners of every sample are read with gather_elements at positions computed in the
graph, so offsets and masks may be run-time inputs.
"""

from __future__ import annotations

import numpy as np

from ....compiler.dtypes import DType
from ..registry import converter
from .common import ints, reshape


def _taps(kernel, strides, pads, dilations, outs) -> tuple[np.ndarray, np.ndarray]:
    """The regular (offset-free) row and column of every (tap, output position)."""
    kh, kw = kernel
    oh, ow = outs
    ti, tj = np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij")
    pi, pj = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
    rows = (pi[None] * strides[0] - pads[0]) + (ti.reshape(-1, 1, 1) * dilations[0])
    cols = (pj[None] * strides[1] - pads[1]) + (tj.reshape(-1, 1, 1) * dilations[1])
    return rows.reshape(kh * kw, oh * ow), cols.reshape(kh * kw, oh * ow)


def _sample(ctx, planes, rows, cols, height: int, width: int):
    """Bilinear samples of `planes` [N, G, Cg, H*W] at float positions [N, G, T] (zero
    outside), as [N, G, Cg, T]."""
    n, g, cg, _ = planes.shape
    taps = rows.shape[-1]
    dtype = planes.dtype.numpy
    top, left = ctx.emit("floor", [rows]), ctx.emit("floor", [cols])
    fy, fx = ctx.emit("sub", [rows, top]), ctx.emit("sub", [cols, left])
    one = ctx.const(np.array(1, dtype))
    total = None
    for dy in (0, 1):
        y = ctx.emit("add", [top, ctx.const(np.array(dy, dtype))]) if dy else top
        wy = fy if dy else ctx.emit("sub", [one, fy])
        for dx in (0, 1):
            x = ctx.emit("add", [left, ctx.const(np.array(dx, dtype))]) if dx else left
            wx = fx if dx else ctx.emit("sub", [one, fx])
            inside = ctx.emit("and", [
                ctx.emit("and", [ctx.emit("greater_equal", [y, ctx.const(np.array(0, dtype))]),
                                 ctx.emit("less", [y, ctx.const(np.array(height, dtype))])]),
                ctx.emit("and", [ctx.emit("greater_equal", [x, ctx.const(np.array(0, dtype))]),
                                 ctx.emit("less", [x, ctx.const(np.array(width, dtype))])])])
            weight = ctx.emit("where", [inside, ctx.emit("mul", [wy, wx]),
                                        ctx.const(np.array(0, dtype))])
            yi = ctx.emit("cast", [ctx.emit("clip", [y], min=0.0, max=float(height - 1))],
                          to=DType.int64)
            xi = ctx.emit("cast", [ctx.emit("clip", [x], min=0.0, max=float(width - 1))],
                          to=DType.int64)
            flat = ctx.emit("add", [ctx.emit("mul", [yi, ctx.const(np.int64(width))]), xi])
            index = ctx.emit("expand", [reshape(ctx, flat, (n, g, 1, taps))],
                             shape=(n, g, cg, taps))
            corner = ctx.emit("gather_elements", [planes, index], axis=3)
            term = ctx.emit("mul", [corner, reshape(ctx, weight, (n, g, 1, taps))])
            total = term if total is None else ctx.emit("add", [total, term])
    return total


@converter("DeformConv", since=19)
def deform_conv(ctx, x, w, offset, b=None, mask=None, dilations=None, group=1,
                kernel_shape=None, offset_group=1, pads=None, strides=None):
    if x.type.rank != 4 or w.type.rank != 4:
        ctx.fail(f"only 2-D DeformConv is supported, got input shape {list(x.shape)}",
                 "Kiln supports DeformConv over [N, C, H, W]")
    if not x.dtype.is_float:
        ctx.fail(f"DeformConv takes floating-point input, not {x.dtype.name}")
    n, c, height, width = x.shape
    m = w.shape[0]
    kernel = ints(kernel_shape) if kernel_shape is not None else tuple(w.shape[2:])
    strides = ints(strides) if strides else (1, 1)
    dilations = ints(dilations) if dilations else (1, 1)
    pads = ints(pads) if pads else (0, 0, 0, 0)
    group, offset_group = int(group), int(offset_group)
    if c != w.shape[1] * group or m % group or c % offset_group:
        ctx.fail(f"DeformConv shapes do not fit: X {list(x.shape)}, W {list(w.shape)}, "
                 f"group {group}, offset_group {offset_group}")
    outs = tuple((size + pads[a] + pads[a + 2] - ((k - 1) * d + 1)) // s + 1
                 for a, (size, k, s, d) in enumerate(zip((height, width), kernel, strides,
                                                         dilations)))
    taps = kernel[0] * kernel[1]
    if offset.shape != (n, offset_group * taps * 2) + outs:
        ctx.fail(f"DeformConv offset has shape {list(offset.shape)}, expected "
                 f"{[n, offset_group * taps * 2, *outs]}")
    rows, cols = _taps(kernel, strides, pads, dilations, outs)
    count = taps * outs[0] * outs[1]
    dtype = x.dtype.numpy
    moves = reshape(ctx, offset, (n, offset_group, taps, 2, outs[0] * outs[1]))
    parts = []
    for axis, base in ((0, rows), (1, cols)):
        part = ctx.emit("slice", [moves], starts=(0, 0, 0, axis, 0),
                        ends=(n, offset_group, taps, axis + 1, outs[0] * outs[1]),
                        steps=(1, 1, 1, 1, 1))
        part = reshape(ctx, part, (n, offset_group, count))
        parts.append(ctx.emit("add", [part, ctx.const(base.reshape(-1).astype(dtype))]))
    planes = reshape(ctx, x, (n, offset_group, c // offset_group, height * width))
    sampled = _sample(ctx, planes, parts[0], parts[1], height, width)
    if mask is not None:
        if mask.shape != (n, offset_group * taps) + outs:
            ctx.fail(f"DeformConv mask has shape {list(mask.shape)}, expected "
                     f"{[n, offset_group * taps, *outs]}")
        sampled = ctx.emit("mul", [sampled, reshape(ctx, mask, (n, offset_group, 1, count))])
    columns = reshape(ctx, sampled, (n, group, (c // group) * taps, outs[0] * outs[1]))
    weights = reshape(ctx, w, (group, m // group, (c // group) * taps))
    y = reshape(ctx, ctx.emit("matmul", [weights, columns]), (n, m) + outs)
    if b is not None:
        y = ctx.emit("add", [y, reshape(ctx, b, (m, 1, 1))])
    return y
