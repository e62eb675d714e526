"""The kernel registry: every kernel implementation is one declared entry.

An entry says which groups it can run (`rejects`: None, or the reason it cannot), what it
needs from the graph (its layout, a padded input, packed weights), its schedule type, the
default schedule for a group on a target, whether a schedule fits a group, and its
lowering. Entries for one op are tried in declaration order, like an ordered list of rules:
the first that does not reject a group runs it (codegen/kernels/select.py).

Kernels are decided at one of three stages, each where the graph still depends on it:
"layout" (before channels_last: the NHWC kernels, whose layout and padding passes apply),
"fusion" (a kernel that runs two anchors as one group) and "group" (after fusion, for
everything else).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ...compiler.ir import FusedGroup
from .. import kernel_ir as K
from ..lower.common import LowerContext
from ..schedules import KernelTarget

Rejects = Callable[[FusedGroup, KernelTarget], "str | None"]
Default = Callable[[FusedGroup, KernelTarget], Any]
Fits = Callable[[FusedGroup, KernelTarget, Any], "str | None"]
Lower = Callable[[LowerContext, FusedGroup, Any], "list[K.Stmt]"]
#: id(constant) -> its packed data, for the constants a kernel reads in its own layout
Pack = Callable[[FusedGroup, KernelTarget, Any], "dict[int, np.ndarray]"]

STAGES = ("layout", "fusion", "group")


def fits_any(group: FusedGroup, target: KernelTarget, schedule: Any) -> str | None:
    """For kernels whose every in-range schedule fits every group they run."""
    return None


def packs_nothing(group: FusedGroup, target: KernelTarget, schedule: Any
                  ) -> dict[int, np.ndarray]:
    return {}


@dataclass(frozen=True)
class Kernel:
    """One kernel implementation and everything selection and codegen ask of it."""

    name: str
    ops: tuple[str, ...]       # the IR ops whose groups it may run
    applies_to: str            # one line for `kiln kernels` and docs
    stage: str                 # "layout", "fusion" or "group"
    schedule: type             # its schedule dataclass (codegen/schedules.py)
    rejects: Rejects
    default: Default
    lower: Lower
    fits: Fits = fits_any
    pack: Pack = packs_nothing
    layout: str = "any"        # the layout it runs in: "NCHW", "NHWC" or "any"
    padded_input: bool = False
    min_vector_bits: int = 0   # the narrowest vectors it is written for (0: portable)
    features: tuple[str, ...] = ()   # ISA features the CPU must have (KernelTarget.features)
    ops_label: str = ""        # what `kiln kernels` names for ops too many to list

    @property
    def ops_text(self) -> str:
        return self.ops_label or ", ".join(self.ops)


KERNELS: dict[str, Kernel] = {}


def register(kernel: Kernel) -> Kernel:
    """Add an entry; later entries of an op are tried after earlier ones."""
    if kernel.name in KERNELS:
        raise ValueError(f"two kernels named '{kernel.name}'")
    if kernel.stage not in STAGES:
        raise ValueError(f"kernel '{kernel.name}': stage must be one of {STAGES}")
    KERNELS[kernel.name] = kernel
    return kernel


def kernels_for(op: str, stage: str) -> list[Kernel]:
    """The entries for `op` decided at `stage`, in the order they are tried."""
    return [k for k in KERNELS.values() if op in k.ops and k.stage == stage]


def registered_ops() -> set[str]:
    """Ops whose groups the registry runs (their lowering is the chosen entry's)."""
    return {op for k in KERNELS.values() for op in k.ops}
