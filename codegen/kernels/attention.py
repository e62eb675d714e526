"""The fused attention kernel (the `attention` op passes/fuse_attention.py forms)."""

from __future__ import annotations

from ...compiler.ir import FusedGroup
from ...compiler.ops.attention import MIN_ROW_BLOCK, fits_stack
from ..lower.attention import lower_attention, tile_rows
from ..schedules import AttentionSchedule, KernelTarget
from .registry import Kernel, register


def _default(group: FusedGroup, target: KernelTarget) -> AttentionSchedule:
    """Blocks of up to MIN_ROW_BLOCK score rows (the op guarantees their room), smaller
    where batch x heads x blocks would leave threads idle; 2-vector tiles."""
    a = group.anchor.attrs
    rows = tile_rows(target.vector_bits)
    block = MIN_ROW_BLOCK
    wanted = -(-target.threads // (a["batch"] * a["heads"]))   # blocks per head
    if -(-a["seq_q"] // (block - rows)) < wanted:
        block = rows + max(1, -(-a["seq_q"] // wanted))
    return AttentionSchedule(row_block=block, rows=rows, vecs=2)


def _fits(group: FusedGroup, target: KernelTarget, s: AttentionSchedule) -> str | None:
    a = group.anchor.attrs
    if s.rows >= s.row_block:
        return f"row_block = {s.row_block} must exceed the tile's {s.rows} rows"
    if not fits_stack(a["seq_k"], a["head_dim"], s.row_block):
        return f"{s.row_block} rows of {a['seq_k']} scores and K^T overflow a task's stack"
    if s.rows * s.vecs > target.register_budget:
        return f"a {s.rows}x{s.vecs}-vector tile needs {s.rows * s.vecs} accumulators; the " \
               f"ISA has room for {target.register_budget}"
    return None


register(Kernel(
    name="attention_fused", ops=("attention",), stage="group",
    applies_to="softmax(Q K^T * scale + mask) V per head, scores kept in the cache",
    schedule=AttentionSchedule, rejects=lambda g, t: None, default=_default, fits=_fits,
    lower=lower_attention))
