"""Conv -> IR conv2d (1-D convolutions run as 2-D ones over a unit height)."""

from __future__ import annotations

from ..registry import converter
from .common import drop_1d, ints, lift_1d, reshape, spatial_attrs


@converter("Conv", since=1)
def conv(ctx, x, w, b=None, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
         pads=None, strides=None):
    if x.type.rank != w.type.rank:
        ctx.fail(f"input of shape {x.shape} and weight of shape {w.shape} differ in rank")
    weight_kernel = w.shape[2:]
    if kernel_shape is not None and ints(kernel_shape) != weight_kernel:
        ctx.fail(f"kernel_shape {list(kernel_shape)} disagrees with the weight's "
                 f"{list(weight_kernel)}")
    attrs = spatial_attrs(ctx, x, weight_kernel, strides, pads, dilations, auto_pad,
                          "convolution")
    lifted = x.type.rank == 3
    x2, w2 = lift_1d(ctx, x), lift_1d(ctx, w)
    if b is not None and b.type.rank != 1:
        b = reshape(ctx, b, (b.type.numel,))
    inputs = [x2, w2] + ([b] if b is not None else [])
    y = ctx.emit("conv2d", inputs, strides=attrs["strides"], pads=attrs["pads"],
                 dilations=attrs["dilations"], group=int(group))
    return drop_1d(ctx, y, lifted)
