"""The kernel registry (registry.py), its entries (conv.py, matmul.py) and selection
(select.py). Groups the registry runs lower through the entry recorded on the group."""

from __future__ import annotations

import numpy as np

from ...compiler.ir import FusedGroup, Graph
from .. import kernel_ir as K
from ..lower.common import LowerContext, lowering
from ..schedules import KernelTarget
from . import attention, conv, matmul  # noqa: F401  (fill KERNELS)
from .registry import KERNELS, Kernel, kernels_for, register, registered_ops  # noqa: F401
from .select import KernelSelector, select_kernels  # noqa: F401


@lowering(*sorted(registered_ops()))
def lower_chosen(ctx: LowerContext, group: FusedGroup) -> list[K.Stmt]:
    """The lowering of the kernel recorded on the group, with its schedule."""
    decision = group.kernel
    return KERNELS[decision.kernel].lower(ctx, group, decision.schedule)


def prepack(graph: Graph, target: KernelTarget) -> dict[int, np.ndarray]:
    """id(constant) -> its packed data, for every group whose kernel reads packed weights."""
    packed: dict[int, np.ndarray] = {}
    for group in graph.groups or []:
        if group.kernel is not None:
            packed.update(KERNELS[group.kernel.kernel].pack(group, target,
                                                            group.kernel.schedule))
    return packed
