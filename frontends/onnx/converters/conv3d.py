"""3-D convolution (stride 1, no padding) as a sum of 2-D convolutions, one per kernel depth
tap: depth moves into the batch, so each tap is a conv2d over [N * OD, C, H, W]. Used by 3-D
ConvTranspose, which has already inserted zeros and padding."""

from __future__ import annotations

from ....compiler.ir import Value
from .common import reshape


def conv3d_unit_stride(ctx, x: Value, w: Value, b: Value | None, dilations, group: int
                       ) -> Value:
    """y[n, m, d, h, w] = sum over c, i, j, k of x[n, c, d + i*dd, h + j*dh, w + k*dw] *
    w[m, c, i, j, k] (+ b[m]), grouped."""
    n, c, depth, height, width = x.shape
    m, _, kd, _, _ = w.shape
    dd, dh, dw = dilations
    out_depth = depth - (kd - 1) * dd
    if out_depth < 1:
        ctx.fail(f"the 3-D kernel ({kd} taps, dilation {dd}) is deeper than the input "
                 f"({depth})")
    moved = ctx.emit("transpose", [x], perm=(0, 2, 1, 3, 4))          # [N, D, C, H, W]
    total = None
    for tap in range(kd):
        start = tap * dd
        planes = ctx.emit("slice", [moved], starts=(0, start, 0, 0, 0),
                          ends=(n, start + out_depth, c, height, width), steps=(1,) * 5)
        planes = reshape(ctx, planes, (n * out_depth, c, height, width))
        kernel = ctx.emit("slice", [w], starts=(0, 0, tap, 0, 0),
                          ends=(m, w.shape[1], tap + 1, w.shape[3], w.shape[4]),
                          steps=(1,) * 5)
        kernel = reshape(ctx, kernel, (m, w.shape[1], w.shape[3], w.shape[4]))
        y = ctx.emit("conv2d", [planes, kernel], strides=(1, 1), pads=(0, 0, 0, 0),
                     dilations=(dh, dw), group=group)
        total = y if total is None else ctx.emit("add", [total, y])
    oh, ow = total.shape[2:]
    y = reshape(ctx, total, (n, out_depth, m, oh, ow))
    y = ctx.emit("transpose", [y], perm=(0, 2, 1, 3, 4))
    if b is not None:
        y = ctx.emit("add", [y, reshape(ctx, b, (m, 1, 1, 1))])
    return y
