"""LinearAttention (opset 27): the recurrence over time steps unrolled with IR ops (shapes are
static, so T is known). Per step: decay the state (gated rules), correct the value with what
the state already retrieves (delta rules), add k (x) v to the state, read it with q. The
state is float32 whatever the activations' dtype, as the spec's reference keeps it."""

from __future__ import annotations

import math

import numpy as np

from ....compiler.dtypes import DType
from ..registry import converter
from .common import reshape, requested_outputs, scalar

_RULES = ("linear", "gated", "delta", "gated_delta")


def _heads(ctx, x, heads: int):
    """[B, T, H*D] -> [B, H, T, D] in float32."""
    b, t, hidden = x.shape
    if hidden % heads:
        ctx.fail(f"last dim {hidden} does not split into {heads} heads")
    y = ctx.emit("transpose", [reshape(ctx, x, (b, t, heads, hidden // heads))],
                 perm=(0, 2, 1, 3))
    return y if y.dtype is DType.float32 else ctx.emit("cast", [y], to=DType.float32)


def _step(ctx, x, i: int):
    """x[:, :, i:i+1, :]."""
    b, h, t, d = x.shape
    return ctx.emit("slice", [x], starts=(0, 0, i, 0), ends=(b, h, i + 1, d),
                    steps=(1, 1, 1, 1))


def _repeat_heads(ctx, x, reps: int):
    if reps == 1:
        return x
    b, h, r, c = x.shape
    y = ctx.emit("expand", [reshape(ctx, x, (b, h, 1, r, c))], shape=(b, h, reps, r, c))
    return reshape(ctx, y, (b, h * reps, r, c))


@converter("LinearAttention", since=27)
def linear_attention(ctx, query, key, value, past_state=None, decay=None, beta=None,
                     chunk_size=None, kv_num_heads=None, q_num_heads=None, scale=None,
                     update_rule="gated_delta"):
    """chunk_size is a tuning hint with no effect on the result."""
    if update_rule not in _RULES:
        ctx.fail(f"update_rule '{update_rule}' is not defined", f"use one of {_RULES}")
    if not q_num_heads or not kv_num_heads or q_num_heads % kv_num_heads:
        ctx.fail("q_num_heads must be a positive multiple of kv_num_heads")
    gating, delta = update_rule in ("gated", "gated_delta"), update_rule in ("delta",
                                                                             "gated_delta")
    if gating != (decay is not None) or delta != (beta is not None):
        ctx.fail(f"update_rule '{update_rule}' needs decay {'given' if gating else 'absent'} "
                 f"and beta {'given' if delta else 'absent'}")
    if any(v.type.rank != 3 for v in (query, key, value)):
        ctx.fail("query, key and value must be rank 3 (B, T, H*D)")
    b, t, _ = query.shape
    q4, k4, v4 = (_heads(ctx, query, q_num_heads), _heads(ctx, key, kv_num_heads),
                  _heads(ctx, value, kv_num_heads))
    d_k, d_v = k4.shape[3], v4.shape[3]
    scale_value = 1.0 / math.sqrt(d_k) if not scale else float(scale)
    if decay is not None:
        if decay.shape[-1] == kv_num_heads:
            decay = ctx.emit("transpose", [reshape(ctx, decay, (b, t, kv_num_heads, 1))],
                             perm=(0, 2, 1, 3))
            decay = decay if decay.dtype is DType.float32 else \
                ctx.emit("cast", [decay], to=DType.float32)
        else:
            decay = _heads(ctx, decay, kv_num_heads)
    if beta is not None:
        heads = beta.shape[-1]
        beta = ctx.emit("transpose", [reshape(ctx, beta, (b, t, heads, 1))], perm=(0, 2, 1, 3))
        beta = beta if beta.dtype is DType.float32 else \
            ctx.emit("cast", [beta], to=DType.float32)
    state_dtype = past_state.dtype if past_state is not None else query.dtype
    if past_state is not None:
        if past_state.shape != (b, kv_num_heads, d_k, d_v):
            ctx.fail(f"past_state {past_state.shape} is not {(b, kv_num_heads, d_k, d_v)}")
        state = past_state if past_state.dtype is DType.float32 else \
            ctx.emit("cast", [past_state], to=DType.float32)
    else:
        state = ctx.const(np.zeros((b, kv_num_heads, d_k, d_v), np.float32))
    outputs = []
    for i in range(t):
        q_t, k_t, v_t = _step(ctx, q4, i), _step(ctx, k4, i), _step(ctx, v4, i)
        if gating:
            g_t = ctx.emit("transpose", [_step(ctx, decay, i)], perm=(0, 1, 3, 2))
            state = ctx.emit("mul", [state, ctx.emit("exp", [g_t])])
        if delta:
            retrieved = ctx.emit("matmul", [k_t, state])
            v_t = ctx.emit("mul", [_step(ctx, beta, i), ctx.emit("sub", [v_t, retrieved])])
        k_col = ctx.emit("transpose", [k_t], perm=(0, 1, 3, 2))
        state = ctx.emit("add", [state, ctx.emit("mul", [k_col, v_t])])
        read = _repeat_heads(ctx, state, q_num_heads // kv_num_heads)
        out_t = ctx.emit("matmul", [q_t, read])
        outputs.append(ctx.emit("mul", [out_t, scalar(ctx, scale_value, out_t)]))
    y = outputs[0] if len(outputs) == 1 else ctx.emit("concat", outputs, axis=2)
    y = reshape(ctx, ctx.emit("transpose", [y], perm=(0, 2, 1, 3)), (b, t, q_num_heads * d_v))
    if y.dtype is not query.dtype:
        y = ctx.emit("cast", [y], to=query.dtype)
    present = state if state.dtype is state_dtype else ctx.emit("cast", [state],
                                                                to=state_dtype)
    return [y, present] if 1 in requested_outputs(ctx) else y
