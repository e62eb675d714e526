"""Loss ops composed from IR ops: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.

The class a target picks is selected with a one-hot mask (target == class ramp), so the whole
loss is elementwise ops and reductions over the class axis."""

from __future__ import annotations

import numpy as np

from ....compiler.dtypes import DType
from ..registry import converter
from .common import reshape, requested_outputs, scalar


def _nll(ctx, log_prob, target, weight, reduction: str, ignore_index):
    if reduction not in ("none", "sum", "mean"):
        ctx.fail(f"reduction '{reduction}' is not defined", "use none, sum or mean")
    if log_prob.type.rank < 2 or target.shape != log_prob.shape[:1] + log_prob.shape[2:]:
        ctx.fail(f"target {target.shape} does not fit input {log_prob.shape} "
                 f"(expected [N, d1, ...] for input [N, C, d1, ...])")
    rank, classes = log_prob.type.rank, log_prob.shape[1]
    ramp = ctx.const(np.arange(classes, dtype=np.int64).reshape((1, classes) +
                                                                 (1,) * (rank - 2)))
    index = target if target.dtype is DType.int64 else ctx.emit("cast", [target],
                                                               to=DType.int64)
    index = reshape(ctx, index, target.shape[:1] + (1,) + target.shape[1:])
    mask = ctx.emit("cast", [ctx.emit("equal", [index, ramp])], to=log_prob.dtype)
    picked = ctx.emit("reduce_sum", [ctx.emit("mul", [log_prob, mask])], axes=(1,),
                      keepdims=False)
    if weight is not None:
        per_class = reshape(ctx, weight, (1, classes) + (1,) * (rank - 2))
        w = ctx.emit("reduce_sum", [ctx.emit("mul", [mask, per_class])], axes=(1,),
                     keepdims=False)
    else:
        w = ctx.const(np.ones(target.shape, dtype=log_prob.dtype.numpy))
    if ignore_index is not None:
        keep = ctx.emit("not", [ctx.emit("equal", [reshape(ctx, index, target.shape),
                                                   scalar(ctx, ignore_index, index)])])
        w = ctx.emit("mul", [w, ctx.emit("cast", [keep], to=log_prob.dtype)])
    loss = ctx.emit("neg", [ctx.emit("mul", [picked, w])])
    if reduction == "none":
        return loss
    axes = tuple(range(target.type.rank))
    total = ctx.emit("reduce_sum", [loss], axes=axes, keepdims=False)
    if reduction == "sum":
        return total
    return ctx.emit("div", [total, ctx.emit("reduce_sum", [w], axes=axes, keepdims=False)])


@converter("NegativeLogLikelihoodLoss", since=12)
def nll_loss(ctx, x, target, weight=None, reduction="mean", ignore_index=None):
    return _nll(ctx, x, target, weight, reduction, ignore_index)


@converter("SoftmaxCrossEntropyLoss", since=12)
def softmax_cross_entropy(ctx, scores, labels, weights=None, reduction="mean",
                          ignore_index=None):
    """NLL of log_softmax over the class axis (1); the optional second output is that
    log_softmax."""
    if scores.type.rank < 2:
        ctx.fail(f"scores need rank 2 or more, got {scores.shape}")
    log_prob = ctx.emit("log_softmax", [scores], axis=1)
    loss = _nll(ctx, log_prob, labels, weights, reduction, ignore_index)
    return [loss, log_prob] if 1 in requested_outputs(ctx) else loss
