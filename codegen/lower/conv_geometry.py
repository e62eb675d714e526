"""The shapes and attributes of a conv2d node, unpacked once for every conv lowering."""

from __future__ import annotations

from typing import NamedTuple

from ...compiler.ir import FusedGroup, Node, Value
from .gemm import merged_shape


class ConvGeometry(NamedTuple):
    """A conv2d node's operands and geometry (NCHW input, OIHW weight, NCHW output)."""

    x: Value
    w: Value
    bias: Value | None
    x_shape: tuple[int, int, int, int]       # n, c, h, w
    w_shape: tuple[int, int, int, int]       # oc, ic per group, kh, kw
    out_hw: tuple[int, int]                  # oh, ow
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]          # top, left, bottom, right
    groups: int


def conv_geometry(node: Node) -> ConvGeometry:
    """Unpack `node` (a conv2d) for a lowering."""
    x, w = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    return ConvGeometry(x, w, bias, tuple(x.shape), tuple(w.shape),
                        tuple(node.output.shape[2:]), tuple(node.attrs["strides"]),
                        tuple(node.attrs["dilations"]), tuple(node.attrs["pads"]),
                        node.attrs["group"])


def epilogue_fits(group: FusedGroup) -> bool:
    """Every epilogue operand of a conv group folds onto the output as (N, C, H*W)."""
    out_shape = group.anchor.output.shape
    return all(merged_shape(v.shape, out_shape, [(0, 1), (1, 2), (2, 4)]) is not None
               for member in group.nodes[1:] for v in member.inputs)
