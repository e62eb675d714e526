"""Normalization ONNX ops: BatchNormalization (inference form) -> IR batch_norm;
LayerNormalization -> IR layer_norm; InstanceNormalization -> layer_norm + per-channel affine."""

from __future__ import annotations

import numpy as np

from ..registry import converter
from .common import axis_of, requested_outputs, reshape


def _inference_batch_norm(ctx, x, scale, bias, mean, var, epsilon):
    if requested_outputs(ctx) != [0]:
        ctx.fail("BatchNormalization's training outputs (running/saved mean and variance) "
                 "are not supported", "export the model in inference mode (model.eval())")
    if x.type.rank < 2:
        ctx.fail(f"BatchNormalization needs an input of rank 2 or more, got shape {x.shape}")
    return ctx.emit("batch_norm", [x, scale, bias, mean, var], epsilon=float(epsilon))


@converter("BatchNormalization", since=1)
def batch_norm_legacy(ctx, x, scale, bias, mean, var, epsilon=1e-5, is_test=0, momentum=0.9,
                      spatial=1, consumed_inputs=None):
    """Opsets 1-8; `is_test` is ignored (Kiln always runs inference)."""
    if not spatial:
        ctx.fail("BatchNormalization with spatial=0 (per-activation statistics) is not "
                 "supported", "export with spatial=1 or opset 9 or newer")
    return _inference_batch_norm(ctx, x, scale, bias, mean, var, epsilon)


@converter("BatchNormalization", since=9)
def batch_norm(ctx, x, scale, bias, mean, var, epsilon=1e-5, momentum=0.9, training_mode=0):
    if training_mode:
        from .batch_norm_training import batch_norm_training
        return batch_norm_training(ctx, x, scale, bias, mean, var, epsilon, momentum)
    return _inference_batch_norm(ctx, x, scale, bias, mean, var, epsilon)


@converter("LayerNormalization", since=17)
def layer_norm(ctx, x, scale, bias=None, axis=-1, epsilon=1e-5, stash_type=1):
    if requested_outputs(ctx) != [0]:
        from .normalization_composed import layer_norm_with_stats

        return layer_norm_with_stats(ctx, x, scale, bias, axis, epsilon, stash_type)
    inputs = [x, scale] + ([bias] if bias is not None else [])
    axis = axis_of(ctx, axis, x.type.rank)
    for value in inputs[1:]:   # each must broadcast to the normalized dims
        if len(value.shape) > x.type.rank - axis or any(
                d not in (1, n) for d, n in zip(value.shape[::-1], x.shape[::-1])):
            ctx.fail(f"scale/bias of shape {value.shape} does not broadcast to the normalized "
                     f"dims {x.shape[axis:]} (axis {axis})")
    return ctx.emit("layer_norm", inputs, axis=axis, epsilon=float(epsilon))


@converter("InstanceNormalization", since=1)
def instance_norm(ctx, x, scale, bias, epsilon=1e-5, consumed_inputs=None):
    """Normalize each (n, c) over the spatial dims, then scale and shift per channel."""
    if x.type.rank < 3:
        ctx.fail(f"InstanceNormalization needs an input of rank 3 or more, got {x.shape}")
    ones = ctx.const(np.ones(x.shape[2:], dtype=x.dtype.numpy))
    y = ctx.emit("layer_norm", [x, ones], axis=2, epsilon=float(epsilon))
    per_channel = (x.shape[1],) + (1,) * (x.type.rank - 2)
    y = ctx.emit("mul", [y, reshape(ctx, scale, per_channel)])
    return ctx.emit("add", [y, reshape(ctx, bias, per_channel)])
