"""The kernel registry (registry.py), its entries (one module per op family) and
selection (select.py). Every group lowers through the entry recorded on it."""

from __future__ import annotations

import numpy as np

from ...compiler.ir import FusedGroup, Graph
from .. import kernel_ir as K
from ..lower.common import LowerContext
from ..schedules import KernelTarget, fields
from . import attention, control_flow, conv, elementwise, indexing, matmul  # noqa: F401
from . import movement, pool, quantized, recurrent, reduce, rows, sampling  # noqa: F401
from .registry import KERNELS, Kernel, kernels_for, register, registered_ops  # noqa: F401
from .select import KernelSelector, select_kernels  # noqa: F401


def lower_group(ctx: LowerContext, group: FusedGroup) -> list[K.Stmt]:
    """The lowering of the kernel recorded on the group (select_kernels), with its
    schedule."""
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


def kernel_table(markdown: bool = False) -> str:
    """The registry as `kiln kernels` prints it: each kernel in the order selection tries
    it, what it runs, what it needs, and its schedule fields with their ranges."""
    entries = []
    for kernel in KERNELS.values():
        needs = [] if kernel.layout == "any" else [kernel.layout]
        if kernel.padded_input:
            needs.append("padded input")
        if kernel.min_vector_bits:
            needs.append(f">= {kernel.min_vector_bits}-bit vectors")
        needs += list(kernel.features)
        knobs = fields(kernel.schedule)
        entries.append((kernel, needs, knobs))
    if markdown:
        lines = ["| kernel | op | stage | runs | needs | schedule fields |",
                 "|---|---|---|---|---|---|"]
        for kernel, needs, knobs in entries:
            knob_text = ", ".join(f"`{name}` [{low}, {high}]" for name, (low, high), _ in knobs)
            lines.append(f"| `{kernel.name}` | {kernel.ops_text} | {kernel.stage} | "
                         f"{kernel.applies_to} | {', '.join(needs) or '-'} | "
                         f"{kernel.schedule.__name__}: {knob_text or 'none'} |")
        return "\n".join(lines)
    lines = []
    for kernel, needs, knobs in entries:
        about = [f"{kernel.ops_text}, chosen at the {kernel.stage} stage"] + (
            [", ".join(needs)] if needs else [])
        lines.append(f"{kernel.name} ({'; '.join(about)})")
        lines.append(f"    runs: {kernel.applies_to}")
        lines.append(f"    schedule: {kernel.schedule.__name__}"
                     + ("" if knobs else " (nothing to tune)"))
        lines += [f"      {name} in [{low}, {high}]: {doc}" for name, (low, high), doc in knobs]
    return "\n".join(lines)
