"""The reduction kernel (reduce_sum, _mean, _max, _min, _prod over any axes)."""

from __future__ import annotations

import math

from ...compiler.ir import FusedGroup
from ..lower.reduce import REDUCE_OPS, lower_reduce, row_block
from ..schedules import KernelTarget, ReductionSchedule
from .registry import Kernel, register

MIN_INNER = 8
WIDEST_CHUNK = 1024


def _default(group: FusedGroup, target: KernelTarget) -> ReductionSchedule:
    """Row by row from 8 kept elements (a vector's worth of work per step); a task takes
    up to 1024 kept elements of a row, fewer where that leaves threads idle and each task
    still reads at least an L1d of input."""
    node = group.anchor
    block = row_block(node, MIN_INNER)
    chunk = WIDEST_CHUNK
    if block is not None:
        x = node.inputs[0]
        outer = math.prod(x.shape[:block[0]])
        reads = x.type.numel
        inner = math.prod(x.shape[block[1]:])
        worth = max(1, reads * x.dtype.itemsize // target.l1d_bytes)
        wanted = min(target.threads, worth)
        if outer * -(-inner // chunk) < wanted:
            per_row = -(-wanted // outer)
            chunk = max(target.lanes, -(-inner // per_row // target.lanes) * target.lanes)
    return ReductionSchedule(min_inner=MIN_INNER, row_chunk=chunk)


register(Kernel(
    name="reduce_loops", ops=REDUCE_OPS, stage="group",
    applies_to="reductions over any axes: row by row (vector loops) where the axes allow",
    schedule=ReductionSchedule, rejects=lambda g, t: None, default=_default,
    lower=lower_reduce))
