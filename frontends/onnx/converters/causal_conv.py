"""CausalConvWithState (opset 27): the past state (or zeros) prepended to the input in time,
a depthwise 1-D convolution with no padding, an optional SiLU, and the last k-1 steps of the
padded input as the new state."""

from __future__ import annotations

import numpy as np

from ..registry import converter
from .common import drop_1d, lift_1d, requested_outputs, reshape


@converter("CausalConvWithState", since=27)
def causal_conv_with_state(ctx, x, weight, bias=None, past_state=None, activation="none"):
    if activation not in ("none", "silu", "swish"):
        ctx.fail(f"activation '{activation}' is not defined", "use none, silu or swish")
    if x.type.rank != 3 or weight.type.rank != 3:
        ctx.fail(f"input {x.shape} and weight {weight.shape} must be rank 3")
    batch, channels, length = x.shape
    k = weight.shape[2]
    if weight.shape[:2] != (channels, 1):
        ctx.fail(f"weight {weight.shape} is not depthwise for {channels} channels")
    if k > 1:
        pad = past_state if past_state is not None else \
            ctx.const(np.zeros((batch, channels, k - 1), dtype=x.dtype.numpy))
        padded = ctx.emit("concat", [pad, x], axis=2)
    else:
        padded = x
    inputs = [lift_1d(ctx, padded), lift_1d(ctx, weight)]
    if bias is not None:
        inputs.append(reshape(ctx, bias, (bias.type.numel,)))
    y = drop_1d(ctx, ctx.emit("conv2d", inputs, strides=(1, 1), pads=(0, 0, 0, 0),
                              dilations=(1, 1), group=channels), True)
    if activation != "none":
        y = ctx.emit("mul", [y, ctx.emit("sigmoid", [y])])
    if 1 not in requested_outputs(ctx):
        return y
    total = padded.shape[2]
    state = ctx.emit("slice", [padded], starts=(0, 0, total - (k - 1)),
                     ends=(batch, channels, total), steps=(1, 1, 1))
    return [y, state]
