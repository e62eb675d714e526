"""The optimizer update rules of ai.onnx.preview.training (Adagrad, Adam, Momentum) as
elementwise IR ops. The step count T must be known at compile time (it picks the bias
correction); the learning rate R may be a run-time scalar."""

from __future__ import annotations

import math

from ..registry import converter
from .common import python_scalar, scalar

DOMAIN = "ai.onnx.preview.training"


def _groups(ctx, tensors, count: int, what: str):
    if len(tensors) % count:
        ctx.fail(f"{what} takes {count} tensors per optimized input, got {len(tensors)}")
    n = len(tensors) // count
    return [tensors[i * n:(i + 1) * n] for i in range(count)]


def _step(ctx, t) -> int:
    return int(python_scalar(ctx.value_of(t, "the optimizer's step count T")))


def _as(ctx, r, like):
    return r if r.dtype is like.dtype else ctx.emit("cast", [r], to=like.dtype)


def _regularized(ctx, x, g, norm_coefficient):
    if not norm_coefficient:
        return g
    return ctx.emit("add", [ctx.emit("mul", [x, scalar(ctx, norm_coefficient, x)]), g])


@converter("Adagrad", since=1, domain=DOMAIN)
def adagrad(ctx, r, t, *tensors, decay_factor=0.0, epsilon=0.0, norm_coefficient=0.0):
    xs, gs, hs = _groups(ctx, tensors, 3, "Adagrad")
    step = _step(ctx, t)
    new_x, new_h = [], []
    for x, g, h in zip(xs, gs, hs):
        rate = ctx.emit("div", [_as(ctx, r, x), scalar(ctx, 1 + step * decay_factor, x)])
        g = _regularized(ctx, x, g, norm_coefficient)
        h_new = ctx.emit("add", [h, ctx.emit("mul", [g, g])])
        root = ctx.emit("add", [ctx.emit("sqrt", [h_new]), scalar(ctx, epsilon, x)])
        update = ctx.emit("div", [ctx.emit("mul", [rate, g]), root])
        new_x.append(ctx.emit("sub", [x, update]))
        new_h.append(h_new)
    return new_x + new_h


@converter("Adam", since=1, domain=DOMAIN)
def adam(ctx, r, t, *tensors, alpha=0.9, beta=0.999, epsilon=0.0, norm_coefficient=0.0,
         norm_coefficient_post=0.0):
    xs, gs, vs, hs = _groups(ctx, tensors, 4, "Adam")
    step = _step(ctx, t)
    correction = math.sqrt(1 - beta ** step) / (1 - alpha ** step) if step > 0 else 1.0
    new_x, new_v, new_h = [], [], []
    for x, g, v, h in zip(xs, gs, vs, hs):
        g = _regularized(ctx, x, g, norm_coefficient)
        v_new = ctx.emit("add", [ctx.emit("mul", [v, scalar(ctx, alpha, v)]),
                                 ctx.emit("mul", [g, scalar(ctx, 1 - alpha, g)])])
        h_new = ctx.emit("add", [ctx.emit("mul", [h, scalar(ctx, beta, h)]),
                                 ctx.emit("mul", [ctx.emit("mul", [g, g]),
                                                  scalar(ctx, 1 - beta, g)])])
        root = ctx.emit("add", [ctx.emit("sqrt", [h_new]), scalar(ctx, epsilon, x)])
        rate = ctx.emit("mul", [_as(ctx, r, x), scalar(ctx, correction, x)])
        x_new = ctx.emit("sub", [x, ctx.emit("mul", [rate, ctx.emit("div", [v_new, root])])])
        if norm_coefficient_post:
            x_new = ctx.emit("mul", [x_new, scalar(ctx, 1 - norm_coefficient_post, x)])
        new_x.append(x_new)
        new_v.append(v_new)
        new_h.append(h_new)
    return new_x + new_v + new_h


@converter("Momentum", since=1, domain=DOMAIN)
def momentum(ctx, r, t, *tensors, alpha=None, beta=None, mode=None, norm_coefficient=None):
    if None in (alpha, beta, mode, norm_coefficient):
        ctx.fail("Momentum needs alpha, beta, mode and norm_coefficient attributes")
    if mode not in ("standard", "nesterov"):
        ctx.fail(f"Momentum mode '{mode}' is not defined", "use standard or nesterov")
    xs, gs, vs = _groups(ctx, tensors, 3, "Momentum")
    gain = beta if _step(ctx, t) > 0 else 1.0
    new_x, new_v = [], []
    for x, g, v in zip(xs, gs, vs):
        g = _regularized(ctx, x, g, norm_coefficient)
        v_new = ctx.emit("add", [ctx.emit("mul", [v, scalar(ctx, alpha, v)]),
                                 ctx.emit("mul", [g, scalar(ctx, gain, g)])])
        direction = v_new if mode == "standard" else \
            ctx.emit("add", [g, ctx.emit("mul", [v_new, scalar(ctx, alpha, v)])])
        new_x.append(ctx.emit("sub", [x, ctx.emit("mul", [_as(ctx, r, x), direction])]))
        new_v.append(v_new)
    return new_x + new_v
