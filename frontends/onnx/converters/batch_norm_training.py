"""BatchNormalization with training_mode=1 (opset 14+): normalize with the batch's own mean
and (biased) variance, and return the running statistics updated with `momentum`."""

from __future__ import annotations

import numpy as np

from .common import requested_outputs, reshape


def batch_norm_training(ctx, x, scale, bias, mean, var, epsilon: float, momentum: float):
    """[Y, running_mean, running_var] as ONNX's reference computes them."""
    if x.type.rank < 2 or not x.dtype.is_float:
        ctx.fail(f"training BatchNormalization needs float input [N, C, ...], got "
                 f"{x.dtype.name} {list(x.shape)}")
    channels = x.shape[1]
    axes = (0,) + tuple(range(2, x.type.rank))
    dtype = x.dtype.numpy
    shape = (channels,) + (1,) * (x.type.rank - 2)
    batch_mean = ctx.emit("reduce_mean", [x], axes=axes, keepdims=True)
    centered = ctx.emit("sub", [x, batch_mean])
    batch_var = ctx.emit("reduce_mean", [ctx.emit("mul", [centered, centered])], axes=axes,
                         keepdims=True)
    spread = ctx.emit("sqrt", [ctx.emit("add", [batch_var, ctx.const(np.array(epsilon,
                                                                              dtype))])])
    y = ctx.emit("div", [ctx.emit("mul", [reshape(ctx, scale, shape), centered]), spread])
    y = ctx.emit("add", [y, reshape(ctx, bias, shape)])
    outputs = [y]
    if set(requested_outputs(ctx)) - {0}:
        keep = ctx.const(np.array(momentum, dtype))
        blend = ctx.const(np.array(1 - momentum, dtype))
        for running, batch in ((mean, batch_mean), (var, batch_var)):
            batch = reshape(ctx, batch, (channels,))
            outputs.append(ctx.emit("add", [ctx.emit("mul", [running, keep]),
                                            ctx.emit("mul", [batch, blend])]))
    return outputs[0] if len(outputs) == 1 else outputs
