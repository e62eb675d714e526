"""Give every padded conv whose kernel reads a padded input an explicit zero `pad` of it.

The dense NHWC kernel is an implicit GEMM: with the borders in memory, every output pixel
reads the same window shape and a row of outputs is a row of equally spaced input pixels.

    conv2d{NHWC, pads=(1, 1, 1, 1)}(x)  =>  conv2d{NHWC, pads=0}(pad(x, H and W by 1))

Convs reading one value with the same padding share one pad. Which convs need one is the
recorded kernel decision's `padded_input` (the registry entry declares it): the depthwise
and Winograd kernels keep their padding, reading zeros outside the image, which costs less
than a copy of the input.
"""

from __future__ import annotations

from ..compiler.ir import Graph, Node, TensorType, Value
from ..compiler.kernel_choice import kernel_choice


def pad_convs(graph: Graph) -> Graph:
    """Dense NHWC convs read a zero-padded copy of their input and have no padding left."""
    padded: dict[tuple[int, tuple[int, ...]], Value] = {}
    choice = kernel_choice(graph)
    for node in list(graph.nodes):
        if node.op != "conv2d" or not any(node.attrs["pads"]):
            continue
        decision = choice.conv_kernel(node)
        if decision is None or not decision.padded_input:
            continue
        x = node.inputs[0]
        pt, pl, pb, pr = node.attrs["pads"]
        key = (id(x), (pt, pl, pb, pr))
        if key not in padded:
            padded[key] = _pad(graph, x, (0, pt, pl, 0, 0, pb, pr, 0), node)
        graph.set_input(node, 0, padded[key])
        node.attrs["pads"] = (0, 0, 0, 0)
    return graph


def _pad(graph: Graph, x: Value, pads: tuple[int, ...], before: Node) -> Value:
    """A zero pad of `x` inserted right after x's producer (or before `before`)."""
    shape = tuple(d + pads[i] + pads[i + 4] for i, d in enumerate(x.shape))
    out = Value(graph.unique_name(x.name + "_padded"), TensorType(x.dtype, shape))
    node = Node("pad", [x], [out], {"pads": pads, "mode": "constant", "value": 0.0},
                graph.unique_node_name(x.name + "_pad"))
    at = graph.nodes.index(x.producer) + 1 if x.producer is not None \
        else graph.nodes.index(before)
    graph.insert(at, node)
    return out
