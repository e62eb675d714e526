"""Pooling ONNX ops -> IR max_pool2d / avg_pool2d (1-D as 2-D), global pools -> reductions."""

from __future__ import annotations

from ..registry import converter
from .common import drop_1d, lift_1d, requested_outputs, spatial_attrs


def _pool(ctx, ir_op, x, kernel_shape, strides, pads, dilations, auto_pad, what, **extra):
    if kernel_shape is None:
        ctx.fail("kernel_shape is required")
    attrs = spatial_attrs(ctx, x, kernel_shape, strides, pads, dilations, auto_pad, what)
    lifted = x.type.rank == 3
    y = ctx.emit(ir_op, [lift_1d(ctx, x)], **attrs, **extra)
    return drop_1d(ctx, y, lifted)


@converter("MaxPool", since=1)
def max_pool(ctx, x, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None,
             pads=None, storage_order=0, strides=None):
    """storage_order only shapes the Indices output, which Kiln does not produce."""
    if 1 in requested_outputs(ctx):
        ctx.fail("MaxPool's Indices output is not supported",
                 "use only the first output (values)")
    return _pool(ctx, "max_pool2d", x, kernel_shape, strides, pads, dilations, auto_pad,
                 "max pooling", ceil_mode=bool(ceil_mode))


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
