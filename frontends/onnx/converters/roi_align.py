"""RoiAlign: per region of interest (run-time boxes), a fixed grid of bilinear samples per
output bin, averaged (or maxed, as ONNX's reference: the max of the weighted corners).

Sample positions are computed in the graph from the boxes, the four corners read with
gather_elements; so `rois` and `batch_indices` may be run-time inputs. The number of samples
per bin must be fixed (sampling_ratio > 0) since it sets the graph's shapes.
"""

from __future__ import annotations

import numpy as np

from ....compiler.dtypes import DType
from ..registry import converter
from .common import reshape


def _column(ctx, rois, index: int, scale: float, offset: float):
    """rois[:, index] * spatial_scale - offset, as [R, 1]."""
    count = rois.shape[0]
    part = ctx.emit("slice", [rois], starts=(0, index), ends=(count, index + 1), steps=(1, 1))
    part = ctx.emit("mul", [part, ctx.const(np.array(scale, rois.dtype.numpy))])
    if offset:
        part = ctx.emit("sub", [part, ctx.const(np.array(offset, rois.dtype.numpy))])
    return part


def _axis_samples(ctx, start, end, bins: int, grid: int, size: int, clamp: bool,
                  order_shape, bin_axis: int, grid_axis: int):
    """Sample coordinates along one axis, [R, samples] in (ph, pw, iy, ix) order."""
    dtype = start.dtype.numpy
    extent = ctx.emit("sub", [end, start])
    if clamp:
        extent = ctx.emit("max", [extent, ctx.const(np.array(1.0, dtype))])
    bin_size = ctx.emit("div", [extent, ctx.const(np.array(bins, dtype))])
    step = ctx.emit("div", [bin_size, ctx.const(np.array(grid, dtype))])
    which_bin = np.indices(order_shape)[bin_axis].reshape(1, -1).astype(dtype)
    which_cell = (np.indices(order_shape)[grid_axis].reshape(1, -1) + 0.5).astype(dtype)
    return ctx.emit("add", [ctx.emit("add", [start, ctx.emit("mul", [ctx.const(which_bin),
                                                                     bin_size])]),
                            ctx.emit("mul", [ctx.const(which_cell), step])])


def _corners(ctx, pos, size: int):
    """(low index, high index, low weight, high weight) along one axis, after clamping."""
    dtype = pos.dtype.numpy
    pos = ctx.emit("max", [pos, ctx.const(np.array(0, dtype))])
    low = ctx.emit("floor", [pos])
    at_end = ctx.emit("greater_equal", [low, ctx.const(np.array(size - 1, dtype))])
    last = ctx.const(np.array(size - 1, dtype))
    low = ctx.emit("where", [at_end, last, low])
    pos = ctx.emit("where", [at_end, last, pos])
    high = ctx.emit("where", [at_end, last, ctx.emit("add", [low, ctx.const(np.array(1,
                                                                                     dtype))])])
    frac = ctx.emit("sub", [pos, low])
    keep = ctx.emit("sub", [ctx.const(np.array(1, dtype)), frac])
    as_int = [ctx.emit("cast", [v], to=DType.int64) for v in (low, high)]
    return as_int[0], as_int[1], keep, frac


@converter("RoiAlign", since=10)
def roi_align(ctx, x, rois, batch_indices, coordinate_transformation_mode="half_pixel",
              mode="avg", output_height=1, output_width=1, sampling_ratio=0,
              spatial_scale=1.0):
    if ctx.opset < 16 and "coordinate_transformation_mode" not in \
            {a.name for a in ctx.node.attribute}:
        coordinate_transformation_mode = "output_half_pixel"   # RoiAlign-10's behaviour
    if x.type.rank != 4 or rois.type.rank != 2 or rois.shape[1] != 4:
        ctx.fail(f"RoiAlign needs X [N, C, H, W] and rois [R, 4], got {list(x.shape)} and "
                 f"{list(rois.shape)}")
    if mode not in ("avg", "max"):
        ctx.fail(f"RoiAlign mode '{mode}' is not 'avg' or 'max'")
    if coordinate_transformation_mode not in ("half_pixel", "output_half_pixel"):
        ctx.fail(f"RoiAlign coordinate_transformation_mode '{coordinate_transformation_mode}' "
                 f"is not half_pixel or output_half_pixel")
    if int(sampling_ratio) <= 0:
        ctx.fail("RoiAlign with sampling_ratio=0 (a per-box number of samples) is not "
                 "supported", "set sampling_ratio to a positive number of samples per bin")
    if not x.dtype.is_float:
        ctx.fail(f"RoiAlign takes floating-point input, not {x.dtype.name}")
    rois = rois if rois.dtype == x.dtype else ctx.emit("cast", [rois], to=x.dtype)
    n, c, height, width = x.shape
    count = rois.shape[0]
    grid, oh, ow = int(sampling_ratio), int(output_height), int(output_width)
    half = coordinate_transformation_mode == "half_pixel"
    offset = 0.5 if half else 0.0
    x1, y1, x2, y2 = (_column(ctx, rois, i, float(spatial_scale), offset) for i in range(4))
    order = (oh, ow, grid, grid)
    ys = _axis_samples(ctx, y1, y2, oh, grid, height, not half, order, 0, 2)
    xs = _axis_samples(ctx, x1, x2, ow, grid, width, not half, order, 1, 3)
    dtype = x.dtype.numpy
    outside = ctx.emit("or", [
        ctx.emit("or", [ctx.emit("less", [ys, ctx.const(np.array(-1, dtype))]),
                        ctx.emit("greater", [ys, ctx.const(np.array(height, dtype))])]),
        ctx.emit("or", [ctx.emit("less", [xs, ctx.const(np.array(-1, dtype))]),
                        ctx.emit("greater", [xs, ctx.const(np.array(width, dtype))])])])
    y_low, y_high, hy, ly = _corners(ctx, ys, height)
    x_low, x_high, hx, lx = _corners(ctx, xs, width)
    samples = oh * ow * grid * grid
    images = ctx.emit("gather", [reshape(ctx, x, (n, c, height * width)),
                                 ctx.emit("cast", [batch_indices], to=DType.int64)], axis=0)
    zero = ctx.const(np.array(0, dtype))
    terms = []
    for yi, wy in ((y_low, hy), (y_high, ly)):
        for xi, wx in ((x_low, hx), (x_high, lx)):
            flat = ctx.emit("add", [ctx.emit("mul", [yi, ctx.const(np.int64(width))]), xi])
            index = ctx.emit("expand", [reshape(ctx, flat, (count, 1, samples))],
                             shape=(count, c, samples))
            value = ctx.emit("gather_elements", [images, index], axis=2)
            weight = ctx.emit("where", [outside, zero, ctx.emit("mul", [wy, wx])])
            terms.append(ctx.emit("mul", [value, reshape(ctx, weight, (count, 1, samples))]))
    combine = "add" if mode == "avg" else "max"
    total = terms[0]
    for term in terms[1:]:
        total = ctx.emit(combine, [total, term])
    bins = reshape(ctx, total, (count, c, oh, ow, grid * grid))
    reducer = "reduce_mean" if mode == "avg" else "reduce_max"
    return ctx.emit(reducer, [bins], axes=(4,), keepdims=False)
