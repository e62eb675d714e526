"""Activation ONNX ops -> IR unary ops (composed where the IR has no single op), and
Softmax/LogSoftmax."""

from __future__ import annotations

import numpy as np

from ..registry import converter
from .common import axis_of, python_scalar, reshape, scalar

#: Clip-6's attribute defaults: the float32 range, meaning "no bound".
_FLT_MAX = float(np.finfo(np.float32).max)


@converter("Relu", since=1)
def relu(ctx, x, consumed_inputs=None):
    return ctx.emit("relu", [x])


@converter("Sigmoid", since=1)
def sigmoid(ctx, x, consumed_inputs=None):
    return ctx.emit("sigmoid", [x])


@converter("Tanh", since=1)
def tanh(ctx, x, consumed_inputs=None):
    return ctx.emit("tanh", [x])


@converter("Softplus", since=1)
def softplus(ctx, x):
    return ctx.emit("softplus", [x])


@converter("Softsign", since=1)
def softsign(ctx, x):
    """x / (1 + |x|)"""
    denominator = ctx.emit("add", [ctx.emit("abs", [x]), scalar(ctx, 1, x)])
    return ctx.emit("div", [x, denominator])


@converter("LeakyRelu", since=1)
def leaky_relu(ctx, x, alpha=0.01, consumed_inputs=None):
    return ctx.emit("leaky_relu", [x], alpha=float(alpha))


@converter("Elu", since=1)
def elu(ctx, x, alpha=1.0, consumed_inputs=None):
    return ctx.emit("elu", [x], alpha=float(alpha))


@converter("Selu", since=1)
def selu(ctx, x, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875,
         consumed_inputs=None):
    """gamma * elu(x, alpha)"""
    return ctx.emit("mul", [ctx.emit("elu", [x], alpha=float(alpha)), scalar(ctx, gamma, x)])


@converter("HardSigmoid", since=1)
def hard_sigmoid(ctx, x, alpha=0.2, beta=0.5, consumed_inputs=None):
    return ctx.emit("hard_sigmoid", [x], alpha=float(alpha), beta=float(beta))


@converter("HardSwish", since=14)
def hard_swish(ctx, x):
    return ctx.emit("hard_swish", [x])


@converter("Gelu", since=20)
def gelu(ctx, x, approximate="none"):
    if approximate not in ("none", "tanh"):
        ctx.fail(f"approximate='{approximate}' is not supported", "use 'none' or 'tanh'")
    return ctx.emit("gelu", [x], approximate=approximate)


@converter("PRelu", since=1)
def prelu(ctx, x, slope, consumed_inputs=None):
    """relu(x) + slope * min(x, 0); before opset 7 a per-channel slope [C] is aligned to
    axis 1 rather than broadcast from the right."""
    if ctx.opset < 7 and slope.type.numel > 1 and x.type.rank > 2 and slope.type.rank == 1:
        slope = reshape(ctx, slope, (slope.shape[0],) + (1,) * (x.type.rank - 2))
    negative = ctx.emit("mul", [ctx.emit("min", [x, scalar(ctx, 0, x)]), slope])
    return ctx.emit("add", [ctx.emit("relu", [x]), negative])


# -- Clip: bounds as attributes before opset 11, as optional inputs from 11 ---------------------

def _bound(value, x):
    """A Clip bound as a Python number of x's kind (None stays open)."""
    if value is None:
        return None
    return float(value) if x.dtype.is_float else int(value)


@converter("Clip", since=1)
def clip_attributes(ctx, x, min=None, max=None, consumed_inputs=None):
    low = None if min is None or min <= -_FLT_MAX else min
    high = None if max is None or max >= _FLT_MAX else max
    return ctx.emit("clip", [x], min=_bound(low, x), max=_bound(high, x))


@converter("Clip", since=6)
def clip_attributes_6(ctx, x, min=-_FLT_MAX, max=_FLT_MAX):
    return clip_attributes(ctx, x, min=min, max=max)


@converter("Clip", since=11)
def clip_inputs(ctx, x, min=None, max=None):
    """Constant bounds become attributes; computed ones become max/min ops."""
    y = x
    bounds = {}
    for name, bound in (("min", min), ("max", max)):
        if bound is None:
            continue
        if bound.is_constant:
            if bound.type.numel != 1:
                ctx.fail(f"Clip's {name} must be a scalar, got shape {bound.shape}")
            bounds[name] = _bound(python_scalar(bound.data), x)
        else:
            y = ctx.emit("max" if name == "min" else "min", [y, bound])
    if not bounds:
        return y
    return ctx.emit("clip", [y], min=bounds.get("min"), max=bounds.get("max"))


# -- Softmax / LogSoftmax: 2-D coercion at `axis` before opset 13, one axis from 13 -------------

def _softmax_family(onnx_op: str, ir_op: str) -> None:
    @converter(onnx_op, since=1)
    def coerced(ctx, x, axis=1):
        axis = axis_of(ctx, axis, x.type.rank)
        if axis == x.type.rank - 1:
            return ctx.emit(ir_op, [x], axis=axis)
        rows = int(np.prod(x.shape[:axis], dtype=np.int64))
        flat = reshape(ctx, x, (rows, x.type.numel // rows if rows else 0))
        return reshape(ctx, ctx.emit(ir_op, [flat], axis=1), x.shape)

    @converter(onnx_op, since=13)
    def single_axis(ctx, x, axis=-1):
        return ctx.emit(ir_op, [x], axis=axis_of(ctx, axis, x.type.rank))


_softmax_family("Softmax", "softmax")
_softmax_family("LogSoftmax", "log_softmax")
