"""How the portable loop kernels are declared: one entry per lowering, no vector
requirement, nothing rejected; the schedules they share default from the target."""

from __future__ import annotations

from typing import Any, Callable

from ...compiler.ir import FusedGroup
from .. import kernel_ir as K
from ..lower.common import LowerContext
from ..schedules import KernelTarget, LoopSchedule, NoSchedule
from .registry import Kernel, register

Unscheduled = Callable[[LowerContext, FusedGroup], "list[K.Stmt]"]


def default_chunk(target: KernelTarget) -> int:
    """Elements per task of a split loop: a float32 input and output chunk fill L1d."""
    return target.l1d_bytes // 8


def chunked(group: FusedGroup, target: KernelTarget) -> LoopSchedule:
    return LoopSchedule(chunk=default_chunk(target))


def loops(name: str, ops: tuple[str, ...], applies_to: str, lower: Any,
          schedule: type = LoopSchedule, default: Any = chunked, ops_label: str = ""
          ) -> Kernel:
    """Declare a portable loop kernel whose lowering takes its schedule."""
    return register(Kernel(name=name, ops=ops, stage="group", applies_to=applies_to,
                           schedule=schedule, rejects=lambda g, t: None, default=default,
                           lower=lower, ops_label=ops_label))


def unscheduled(name: str, ops: tuple[str, ...], applies_to: str, lower: Unscheduled
                ) -> Kernel:
    """Declare a portable loop kernel with nothing to tune."""
    return loops(name, ops, applies_to, lambda ctx, g, s: lower(ctx, g), NoSchedule,
                 lambda g, t: NoSchedule())
