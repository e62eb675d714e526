"""Codegen's answers to the passes' questions about kernels (compiler/kernel_choice.py).

One object per compilation, made by the driver for the target's vector width, so the
layout, padding and fusion passes ask the same rules the lowerings use.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..compiler.ir import Node
from .lower.conv_pointwise_depthwise import fuses_into_depthwise
from .lower.conv_winograd import winograd_plan
from .lower.nhwc_kinds import nhwc_conv_kind

#: the smallest vector width (bits) the NHWC kernels are written for
MIN_NHWC_VECTOR_BITS = 256


@dataclass(frozen=True)
class VectorKernels:
    """The kernels for a target with `vector_bits`-wide vectors (0: none)."""

    vector_bits: int

    def nhwc_conv_kind(self, node: Node) -> str | None:
        if self.vector_bits < MIN_NHWC_VECTOR_BITS:
            return None
        return nhwc_conv_kind(node)

    def runs_winograd(self, node: Node) -> bool:
        return winograd_plan(node, self.vector_bits) is not None

    def fuses_into_depthwise(self, pw: Node, between: list[Node], dw: Node) -> bool:
        return fuses_into_depthwise(pw, between, dw, self.vector_bits)
