"""Attention (opset 23/24) composed from IR ops: heads split from 3-D inputs, KV cache
concatenation, grouped-query head repetition, scaled Q.K^T, softcap, additive mask (boolean,
float, causal, non-padded lengths), softmax, and the product with V."""

from __future__ import annotations

import math

import numpy as np

from ....compiler.dtypes import DType
from ..registry import converter
from .common import onnx_dtype, requested_outputs, reshape, scalar


def _heads(ctx, x, heads: int):
    """[B, S, H*D] -> [B, H, S, D]."""
    b, s, hidden = x.shape
    if hidden % heads:
        ctx.fail(f"hidden size {hidden} does not split into {heads} heads")
    x = reshape(ctx, x, (b, s, heads, hidden // heads))
    return ctx.emit("transpose", [x], perm=(0, 2, 1, 3))


def _repeat_heads(ctx, x, reps: int):
    """[B, H, S, D] -> [B, H*reps, S, D], each head repeated reps times in place."""
    if reps == 1:
        return x
    b, h, s, d = x.shape
    x = reshape(ctx, x, (b, h, 1, s, d))
    x = ctx.emit("expand", [x], shape=(b, h, reps, s, d))
    return reshape(ctx, x, (b, h * reps, s, d))


def _minus_inf(ctx, like):
    return scalar(ctx, -math.inf, like)


@converter("Attention", since=23)
def attention(ctx, q, k, v, attn_mask=None, past_key=None, past_value=None,
              nonpad_kv_seqlen=None, is_causal=0, kv_num_heads=None, q_num_heads=None,
              qk_matmul_output_mode=0, scale=None, softcap=0.0, softmax_precision=None,
              left_window_size=-1, right_window_size=-1):
    """As the ONNX reference computes it (the order of softcap, mask and outputs included).
    Opset 25's sliding windows (left/right_window_size) are refused."""
    if left_window_size != -1 or right_window_size != -1:
        ctx.fail("sliding-window Attention (left/right_window_size) is not supported")
    rank = q.type.rank
    if rank not in (3, 4) or k.type.rank != rank or v.type.rank != rank:
        ctx.fail(f"Q, K and V must all be 3-D or 4-D, got {q.shape}, {k.shape}, {v.shape}")
    if rank == 3:
        if q_num_heads is None or kv_num_heads is None:
            ctx.fail("3-D Attention inputs need q_num_heads and kv_num_heads")
        q, k, v = _heads(ctx, q, q_num_heads), _heads(ctx, k, kv_num_heads), \
            _heads(ctx, v, kv_num_heads)
    batch, heads, q_len, head_size = q.shape
    root = math.sqrt(float(scale) if scale is not None else 1.0 / math.sqrt(head_size))
    present_key = ctx.emit("concat", [past_key, k], axis=2) if past_key is not None else k
    present_value = ctx.emit("concat", [past_value, v], axis=2) \
        if past_value is not None else v
    k, v = present_key, present_value
    kv_len = k.shape[2]
    past_len = past_key.shape[2] if past_key is not None else 0
    dtype = q.dtype

    bias = None
    if attn_mask is not None:
        short = kv_len - attn_mask.shape[-1]
        if short > 0:
            pads = [0] * (2 * attn_mask.type.rank)
            pads[-1] = short
            fill = 0.0 if attn_mask.dtype is DType.bool else -math.inf
            attn_mask = ctx.emit("pad", [attn_mask], pads=tuple(pads), mode="constant",
                                 value=fill)
        if attn_mask.dtype is DType.bool:
            masked_out = ctx.emit("cast", [ctx.emit("not", [attn_mask])], to=dtype)
            if is_causal:   # the reference computes (1 - mask) * -inf here (NaN where kept)
                bias = ctx.emit("mul", [masked_out, _minus_inf(ctx, masked_out)])
            else:
                bias = ctx.emit("where", [attn_mask, scalar(ctx, 0, masked_out),
                                          _minus_inf(ctx, masked_out)])
        else:
            bias = attn_mask
    if is_causal:
        causal = np.zeros((q_len, kv_len), dtype=dtype.numpy)
        causal[:, past_len:] = np.where(np.triu(np.ones((q_len, kv_len - past_len)), k=1)
                                        == 1, -np.inf, 0).astype(dtype.numpy)
        causal = ctx.const(causal)
        bias = causal if bias is None else ctx.emit("add", [bias, causal])
    if nonpad_kv_seqlen is not None:
        lengths = reshape(ctx, nonpad_kv_seqlen, (batch, 1, 1, 1))
        ramp = ctx.const(np.arange(kv_len, dtype=np.int64).reshape(1, 1, 1, kv_len))
        if lengths.dtype is not DType.int64:
            lengths = ctx.emit("cast", [lengths], to=DType.int64)
        keep = ctx.emit("less", [ramp, lengths])
        zero = ctx.const(np.zeros((), dtype=dtype.numpy))
        padding = ctx.emit("where", [keep, zero, _minus_inf(ctx, zero)])
        bias = padding if bias is None else ctx.emit("add", [bias, padding])

    q_heads = heads
    kv_heads = k.shape[1]
    if q_heads != kv_heads:
        if q_heads % kv_heads or v.shape[1] != kv_heads:
            ctx.fail(f"{q_heads} query heads do not group over {kv_heads} key/value heads")
        k = _repeat_heads(ctx, k, q_heads // kv_heads)
        v = _repeat_heads(ctx, v, q_heads // kv_heads)

    if dtype is DType.float16:   # float16 computes in float32, cast back at the end
        q, k, v = (ctx.emit("cast", [t], to=DType.float32) for t in (q, k, v))
        if bias is not None:
            bias = ctx.emit("cast", [bias], to=DType.float32)
    qs = ctx.emit("mul", [q, scalar(ctx, root, q)])
    ks = ctx.emit("mul", [ctx.emit("transpose", [k], perm=(0, 1, 3, 2)), scalar(ctx, root, k)])
    scores = ctx.emit("matmul", [qs, ks])
    if softcap and softcap > 0:
        capped = ctx.emit("tanh", [ctx.emit("div", [scores, scalar(ctx, softcap, scores)])])
        scores = ctx.emit("mul", [capped, scalar(ctx, softcap, scores)])
    qk_output = scores
    with_bias = ctx.emit("add", [scores, bias]) if bias is not None else scores
    if qk_matmul_output_mode == 2:
        qk_output = with_bias
    if softmax_precision is not None:
        precision = onnx_dtype(ctx, softmax_precision, "softmax_precision")
        if precision is not with_bias.dtype:
            with_bias = ctx.emit("cast", [with_bias], to=precision)
    probs = ctx.emit("softmax", [with_bias], axis=3)
    if qk_matmul_output_mode == 3:
        qk_output = probs
    if qk_output.dtype is not dtype:
        qk_output = ctx.emit("cast", [qk_output], to=dtype)
    if probs.dtype is not v.dtype:
        probs = ctx.emit("cast", [probs], to=v.dtype)
    y = ctx.emit("matmul", [probs, v])
    if y.dtype is not dtype:
        y = ctx.emit("cast", [y], to=dtype)
    if rank == 3:
        y = ctx.emit("transpose", [y], perm=(0, 2, 1, 3))
        y = reshape(ctx, y, (y.shape[0], y.shape[1], y.shape[2] * y.shape[3]))
    results = [y, present_key, present_value, qk_output]
    wanted = requested_outputs(ctx)
    return [r if i in wanted else None for i, r in enumerate(results)]
