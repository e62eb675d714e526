"""Give every NHWC qconv2d whose input channels are not a multiple of 4 a channel-padded input.

The NHWC int8 conv copies a tap's channels a word (four channels) at a time, so it needs their
count a multiple of 4 (a stem has 3; its lowering asserts it). Padding channels read A's zero point and meet weights equal to their channel's
zero point, so every added product (a - a_zero)(w - w_zero) is 0: the result is exact.

    qconv2d{NHWC}(x[1, 224, 224, 3], W[64, 3, 7, 7])
 => qconv2d{NHWC}(pad(x, C by 1 with a_zero)[1, 224, 224, 4], W'[64, 4, 7, 7])

Which qconvs run that kernel is the recorded kernel decision's (compiler/kernel_choice.py).
"""

from __future__ import annotations

import numpy as np

from ..compiler.ir import Graph, Node, TensorType, Value
from ..compiler.kernel_choice import kernel_choice

#: the kernel whose words this padding fills
KERNEL = "int8_conv_nhwc_vnni"


def pad_qconv_channels(graph: Graph) -> Graph:
    """NHWC qconvs of the VNNI conv read a whole number of 4-channel words per tap."""
    choice = kernel_choice(graph)
    padded: dict[tuple[int, int], Value] = {}
    for node in list(graph.nodes):
        if node.op != "qconv2d" or node.attrs.get("layout") != "NHWC" \
                or node.attrs["group"] != 1 or node.inputs[0].shape[3] % 4 == 0:
            continue
        decision = choice.conv_kernel(node)
        if decision is None or decision.kernel != KERNEL:
            continue
        x = node.inputs[0]
        extra = -x.shape[3] % 4
        key = (id(x), node.attrs["a_zero_point"])
        if key not in padded:
            padded[key] = _pad_channels(graph, x, extra, node.attrs["a_zero_point"], node)
        graph.set_input(node, 0, padded[key])
        graph.set_input(node, 1, _padded_weight(graph, node, extra))
    return graph


def _padded_weight(graph: Graph, node: Node, extra: int) -> Value:
    """The OIHW weight with `extra` input channels equal to each output channel's zero
    point."""
    w = node.inputs[1]
    zero = node.inputs[2].data.astype(w.data.dtype).reshape(-1, 1, 1, 1)
    fill = np.broadcast_to(zero, (w.shape[0], extra, *w.shape[2:]))
    return graph.constant(np.ascontiguousarray(np.concatenate([w.data, fill], axis=1)),
                          w.name + "_words")


def _pad_channels(graph: Graph, x: Value, extra: int, value: int, before: Node) -> Value:
    """`x` (NHWC) with `extra` channels of `value`, right after x's producer."""
    shape = x.shape[:3] + (x.shape[3] + extra,)
    out = Value(graph.unique_name(x.name + "_words"), TensorType(x.dtype, shape))
    node = Node("pad", [x], [out], {"pads": (0, 0, 0, 0, 0, 0, 0, extra), "mode": "constant",
                                    "value": value}, graph.unique_node_name(x.name + "_words"))
    at = graph.nodes.index(x.producer) + 1 if x.producer is not None \
        else graph.nodes.index(before)
    graph.insert(at, node)
    return out
