"""The kernel decisions passes read, without importing codegen.

Which kernel runs a conv decides its layout (the NHWC kernels run channels last), whether
it reads a zero-padded copy of its input (pad_convs), and whether a 1x1 conv and the
depthwise conv after it become one group (fuse). Codegen's kernel registry sits above the
passes, so the driver hands them a KernelChoice (codegen/kernels/select.py), stored as
graph.metadata["kernel_choice"]: it decides each conv's kernel once, the first time a
pass asks, records the decision, and answers every later question from the record. After
fusion, codegen records the kernel and schedule of every group on FusedGroup.kernel.
Without a KernelChoice no NHWC kernel exists and every conv stays as imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .ir import Graph, Node


@dataclass(frozen=True)
class KernelDecision:
    """The kernel chosen for a node or group, and what the graph must do for it."""

    kernel: str                 # the registry entry's name
    layout: str                 # "NCHW" or "NHWC": the layout the kernel runs in
    padded_input: bool          # reads a zero-padded copy of its input (pad_convs makes it)
    key: str                    # the signature a schedule file names it by
    signature: dict[str, Any]
    schedule: Any = None        # a schedule read from a schedule file, else None (default)


class KernelChoice(Protocol):
    """The questions passes ask about kernels, answered by the kernel registry."""

    #: the vector width (bits) the kernels are written for; 0 for portable scalar code
    vector_bits: int

    def conv_kernel(self, node: Node) -> KernelDecision | None:
        """The NHWC kernel that runs conv2d `node`, decided once; None: no NHWC kernel
        does, and the conv keeps its layout (its kernel is chosen after fusion)."""

    def fuses_into_depthwise(self, pw: Node, between: list[Node], dw: Node) -> bool:
        """Whether one kernel runs the 1x1 conv pw -> between -> depthwise conv dw."""


class NoVectorKernels:
    """The answers when no vector kernels exist: every conv runs the portable loops."""

    vector_bits = 0

    def conv_kernel(self, node: Node) -> KernelDecision | None:
        return None

    def fuses_into_depthwise(self, pw: Node, between: list[Node], dw: Node) -> bool:
        return False


def kernel_choice(graph: Graph) -> KernelChoice:
    """The kernel choice the driver gave this graph, or NoVectorKernels."""
    return graph.metadata.get("kernel_choice") or NoVectorKernels()
