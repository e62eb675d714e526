"""What passes may ask about the kernels that will run a node, without importing codegen.

Layout, padding and fusion depend on which kernel runs a conv: the channels-last pass moves
only the convs an NHWC kernel runs, pad_convs pads only those that read a padded copy, and
fusion pairs a 1x1 conv with the depthwise conv after it only where one kernel runs both.
Codegen owns those kernels, and it sits above the passes; so the driver hands the passes an
object that answers for codegen (`codegen/kernel_choice.py`), stored as
graph.metadata["kernel_choice"]. Without one, no NHWC kernel exists and every conv stays
as imported.
"""

from __future__ import annotations

from typing import Protocol

from .ir import Graph, Node


class KernelChoice(Protocol):
    """The questions passes ask about kernels, each answered by the kernel registry."""

    #: the vector width (bits) the kernels are written for; 0 for portable scalar code
    vector_bits: int

    def nhwc_conv_kind(self, node: Node) -> str | None:
        """'dense' or 'depthwise' when an NHWC kernel can run conv2d `node`, else None."""

    def runs_winograd(self, node: Node) -> bool:
        """Whether the NHWC conv `node` runs as Winograd (which reads no padded copy)."""

    def fuses_into_depthwise(self, pw: Node, between: list[Node], dw: Node) -> bool:
        """Whether one kernel runs the 1x1 conv pw -> between -> depthwise conv dw."""


class NoVectorKernels:
    """The answers when no vector kernels exist: every conv runs the portable loops."""

    vector_bits = 0

    def nhwc_conv_kind(self, node: Node) -> str | None:
        return None

    def runs_winograd(self, node: Node) -> bool:
        return False

    def fuses_into_depthwise(self, pw: Node, between: list[Node], dw: Node) -> bool:
        return False


def kernel_choice(graph: Graph) -> KernelChoice:
    """The kernel choice the driver gave this graph, or NoVectorKernels."""
    return graph.metadata.get("kernel_choice") or NoVectorKernels()
