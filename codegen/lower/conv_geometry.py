"""The shapes and attributes of a conv2d node, unpacked once for every conv lowering."""

from __future__ import annotations

from typing import NamedTuple

from ...compiler.ir import Node, Value


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
