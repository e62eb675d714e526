"""Pooling ONNX ops -> IR max_pool2d / avg_pool2d (1-D as 2-D), global pools -> reductions.

3-D windows run as two 2-D pools: one over (H, W) with depth folded into channels, then one
over depth with (H, W) flattened. This is exact: a box window is the product of its per-axis
windows, so its max is a max of maxes, and its element count (with or without padding, and
clipped in ceil mode) is the product of per-axis counts, so its mean is a mean of means.
"""

from __future__ import annotations

from ..registry import converter
from .pool_indices import max_pool_indices
from .common import (drop_1d, ints, lift_1d, requested_outputs, reshape, spatial_attrs,
                     window_pads)


def _pool(ctx, ir_op, x, kernel_shape, strides, pads, dilations, auto_pad, what, **extra):
    if kernel_shape is None:
        ctx.fail("kernel_shape is required")
    if x.type.rank == 5:
        return _pool_3d(ctx, ir_op, x, kernel_shape, strides, pads, dilations, auto_pad, what,
                        **extra)
    attrs = spatial_attrs(ctx, x, kernel_shape, strides, pads, dilations, auto_pad, what)
    lifted = x.type.rank == 3
    y = ctx.emit(ir_op, [lift_1d(ctx, x)], **attrs, **extra)
    return drop_1d(ctx, y, lifted)


def _pool_3d(ctx, ir_op, x, kernel_shape, strides, pads, dilations, auto_pad, what, **extra):
    """A 3-D pool over [N, C, D, H, W] as an (H, W) pool, then a depth pool."""
    kernel = ints(kernel_shape)
    strides = ints(strides) if strides else (1, 1, 1)
    dilations = ints(dilations) if dilations else (1, 1, 1)
    if len(kernel) != 3 or len(strides) != 3 or len(dilations) != 3:
        ctx.fail(f"kernel_shape {list(kernel)}, strides {list(strides)} and dilations "
                 f"{list(dilations)} must each have 3 values for 3-D {what}")
    if min(strides + dilations + kernel) < 1:
        ctx.fail("kernel_shape, strides and dilations must be positive")
    (d0, d1), (h0, h1), (w0, w1) = window_pads(ctx, auto_pad, x.shape[2:], kernel, strides,
                                                dilations, pads)
    n, c, d, h, w = x.shape
    planes = reshape(ctx, x, (n, c * d, h, w))
    y = ctx.emit(ir_op, [planes], kernel=kernel[1:], strides=strides[1:],
                 pads=(h0, w0, h1, w1), dilations=dilations[1:], **extra)
    oh, ow = y.shape[2:]
    columns = reshape(ctx, y, (n, c, d, oh * ow))
    z = ctx.emit(ir_op, [columns], kernel=(kernel[0], 1), strides=(strides[0], 1),
                 pads=(d0, 0, d1, 0), dilations=(dilations[0], 1), **extra)
    return reshape(ctx, z, (n, c, z.shape[2], oh, ow))


@converter("MaxPool", since=1)
def max_pool(ctx, x, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None,
             pads=None, storage_order=0, strides=None):
    """storage_order only shapes the Indices output (see pool_indices.py)."""
    y = _pool(ctx, "max_pool2d", x, kernel_shape, strides, pads, dilations, auto_pad,
              "max pooling", ceil_mode=bool(ceil_mode))
    if 1 not in requested_outputs(ctx):
        return y
    return [y, max_pool_indices(ctx, x, y, kernel_shape, strides, pads, dilations, auto_pad,
                                int(storage_order))]


@converter("AveragePool", since=1)
def average_pool(ctx, x, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None,
                 kernel_shape=None, pads=None, strides=None):
    return _pool(ctx, "avg_pool2d", x, kernel_shape, strides, pads, dilations, auto_pad,
                 "average pooling", ceil_mode=bool(ceil_mode),
                 count_include_pad=bool(count_include_pad))


def _global(ctx, ir_op, x):
    if x.type.rank < 3:
        ctx.fail(f"global pooling needs an input of rank 3 or more, got shape {x.shape}")
    return ctx.emit(ir_op, [x], axes=tuple(range(2, x.type.rank)), keepdims=True)


@converter("GlobalAveragePool", since=1)
def global_average_pool(ctx, x):
    return _global(ctx, "reduce_mean", x)


@converter("GlobalMaxPool", since=1)
def global_max_pool(ctx, x):
    return _global(ctx, "reduce_max", x)
