"""The reduction kernel (reduce_sum, _mean, _max, _min, _prod over any axes)."""

from __future__ import annotations

from ...compiler.ir import FusedGroup
from ..lower.reduce import REDUCE_OPS, lower_reduce
from ..schedules import KernelTarget, ReductionSchedule
from .registry import Kernel, register


def _default(group: FusedGroup, target: KernelTarget) -> ReductionSchedule:
    """Row by row from 8 kept elements (a vector's worth of work per step), rows in
    1024-element chunks per task."""
    return ReductionSchedule(min_inner=8, row_chunk=1024)


register(Kernel(
    name="reduce_loops", ops=REDUCE_OPS, stage="group",
    applies_to="reductions over any axes: row by row (vector loops) where the axes allow",
    schedule=ReductionSchedule, rejects=lambda g, t: None, default=_default,
    lower=lower_reduce))
