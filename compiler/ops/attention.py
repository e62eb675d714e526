"""Multi-head scaled dot-product attention as one op (made by passes/fuse_attention.py).

q, k and v keep the layout the projections wrote, [batch, seq, heads * head_dim] (any shape
with that row-major layout); the output is [batch, seq_q, heads * head_dim] laid out the same
way, in the shape `out_shape`. mask, when present, broadcasts to [batch, heads, seq_q, seq_k].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import TensorType
from .registry import register

#: floats of stack one task of the attention kernel may use: one head's K^T plus a block
#: of score rows (codegen/kernels/attention.py keeps its schedules within this)
STACK_FLOATS = 64 * 1024
#: score rows per task the op guarantees room for (passes/fuse_attention.py forms the op
#: only where they fit): enough for the kernel's blocks of register tiles
MIN_ROW_BLOCK = 72


def fits_stack(seq_k: int, head_dim: int, row_block: int = MIN_ROW_BLOCK) -> bool:
    """Whether one head's K^T and `row_block` rows of scores fit a task's stack."""
    return head_dim * seq_k + row_block * seq_k <= STACK_FLOATS


def _attention_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return [TensorType(types[0].dtype, tuple(attrs["out_shape"]))]


@register("attention", "softmax", _attention_type)
def attention(q, k, v, mask=None, *, batch, heads, seq_q, seq_k, head_dim, scale, out_shape):
    """softmax(Q K^T * scale + mask) V per head, heads merged back into the last dim."""
    def split(x, seq):
        return x.reshape(batch, seq, heads, head_dim).transpose(0, 2, 1, 3)

    qh, kh, vh = split(q, seq_q), split(k, seq_k), split(v, seq_k)
    scores = np.matmul(qh, kh.transpose(0, 1, 3, 2)) * np.asarray(scale, q.dtype)
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    out = np.matmul(weights.astype(q.dtype), vh)
    return out.transpose(0, 2, 1, 3).reshape(out_shape).astype(q.dtype)
