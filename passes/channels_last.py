"""Run convolutions channels-last (NHWC) where the target has vector microkernels.

An NHWC conv kernel vectorizes over output channels: every run of output pixels is a GEMM
with the packed weights, whatever the image size, and a depthwise conv is a vector op per
pixel. The pass picks the values that live in NHWC: the outputs of the convs it converts and
of the ops that only carry such values along (elementwise ops, pooling, concat, reductions),
and inserts a transpose wherever a value enters or leaves that region. Constants an NHWC op
reads are transposed at compile time.

    conv2d(x) -> relu -> max_pool2d -> conv2d -> reshape
 => transpose(x) -> conv2d{NHWC} -> relu -> max_pool2d{NHWC} -> conv2d{NHWC}
      -> transpose -> reshape

A transpose that moves only dims of size 1 is a reshape (same bytes in the same order), so
it is emitted as one. Which convs an NHWC kernel runs is the kernel choice's answer
(compiler/kernel_choice.py; none without vector kernels); the pass never changes what the
graph computes.
"""

from __future__ import annotations

import numpy as np

from ..compiler.ir import Graph, Node, TensorType, Value
from ..compiler.ops import op_def
from ..compiler.ops.nn import NCHW_TO_NHWC, NHWC_TO_NCHW
from ..compiler.kernel_choice import KernelChoice, kernel_choice


def channels_last(graph: Graph) -> Graph:
    """Convs (and what lies between them) in NHWC, transposes only at the region's edges."""
    choice = kernel_choice(graph)
    region = _Region(graph)
    for node in list(graph.nodes):
        inputs = _joins(node, region.nhwc, choice)
        if inputs is not None:
            region.convert(node, inputs)
    region.exit_transposes()
    return graph


# -- which nodes join the region ---------------------------------------------------------------
# _joins returns, for a node that runs in NHWC, how each input slot is read: "nhwc" (an NHWC
# value, or an NCHW one transposed on the way in), "const" (a constant transposed at compile
# time) or "as is" (layout-free: weights, biases, scalars). None: the node stays NCHW.

def _joins(node: Node, nhwc: set[int], choice: KernelChoice) -> list[str] | None:
    if node.op in ("conv2d", "qconv2d"):
        if node.attrs.get("layout", "NCHW") != "NCHW":
            return None
        decision = choice.conv_kernel(node)
        if decision is None or decision.layout != "NHWC":
            return None
        return ["nhwc"] + ["as is"] * (len(node.inputs) - 1)
    if len(node.outputs) != 1 or not node.inputs:
        return None
    rule = op_def(node.op).layout_rule
    if rule in ("carried", "carried_axis"):
        return _carried(node, nhwc)
    if id(node.inputs[0]) not in nhwc or len(node.inputs) != 1:
        return None
    if rule == "channels_last" and node.attrs.get("layout", "NCHW") == "NCHW":
        return ["nhwc"]
    if rule == "axes" and set(node.attrs) == {"axes", "keepdims"} \
            and _reduce_output_layout(node) is not None:
        return ["nhwc"]
    return None


def _carried(node: Node, nhwc: set[int]) -> list[str] | None:
    """Slots of an elementwise op or concat whose output is rank 4 and reads an NHWC value."""
    if len(node.output.shape) != 4 or not any(id(v) in nhwc for v in node.inputs):
        return None
    concat = op_def(node.op).layout_rule == "carried_axis"
    slots = []
    for v in node.inputs:
        if id(v) in nhwc or (len(v.shape) == 4 and concat):
            slots.append("nhwc")
        elif concat:
            return None
        elif v.type.numel == 1:
            slots.append("as is")
        elif v.is_constant and len(v.shape) <= 4:
            slots.append("const")
        elif len(v.shape) == 4:
            slots.append("nhwc")
        else:
            return None
    return slots


def _reduce_output_layout(node: Node) -> str | None:
    """'nhwc' (keepdims: the output is rank 4), 'plain' (the kept dims come out in the same
    order either way: N and C), or None (the NHWC result would be a different permutation)."""
    if node.attrs["keepdims"]:
        return "nhwc"
    kept = [d for d in range(4) if d not in set(node.attrs["axes"])]
    order = [d for d in NCHW_TO_NHWC if d in kept]
    return "plain" if order == kept else None


# -- rewriting ----------------------------------------------------------------------------------

class _Region:
    """The NHWC values of one graph and the rewrites that put nodes into the region."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.nhwc: set[int] = set()          # ids of values stored NHWC
        self.members: set[int] = set()       # ids of nodes converted
        self.entries: dict[int, Value] = {}  # id(NCHW value) -> its NHWC transpose
        self.values: list[Value] = []        # NHWC values, in creation order

    def convert(self, node: Node, slots: list[str]) -> None:
        """Rewrite `node` to read and produce NHWC values."""
        for index, (value, slot) in enumerate(zip(list(node.inputs), slots)):
            if slot == "nhwc" and id(value) not in self.nhwc:
                self.graph.set_input(node, index, self._enter(value, node))
            elif slot == "const":
                self.graph.set_input(node, index, self._constant(value))
        self.members.add(id(node))
        rule = op_def(node.op).layout_rule
        plain = rule == "axes" and _reduce_output_layout(node) == "plain"
        if rule == "channels_last":
            node.attrs["layout"] = "NHWC"
        elif rule == "carried_axis":
            node.attrs["axis"] = NCHW_TO_NHWC.index(node.attrs["axis"] % 4)
        elif rule == "axes":
            node.attrs["axes"] = tuple(sorted(NCHW_TO_NHWC.index(a) for a in node.attrs["axes"]))
        if plain:
            return
        out = node.output
        out.type = TensorType(out.dtype, tuple(out.shape[p] for p in NCHW_TO_NHWC))
        self.nhwc.add(id(out))
        self.values.append(out)

    def _enter(self, value: Value, before: Node) -> Value:
        """`value` (NCHW) as an NHWC value, one transpose per value."""
        if id(value) not in self.entries:
            at = self.graph.nodes.index(before) if value.producer is None \
                else self.graph.nodes.index(value.producer) + 1
            self.entries[id(value)] = _permute(self.graph, value, NCHW_TO_NHWC, at,
                                               value.name + "_nhwc")
        return self.entries[id(value)]

    def _constant(self, value: Value) -> Value:
        data = value.data.reshape((1,) * (4 - value.data.ndim) + value.data.shape)
        return self.graph.constant(np.ascontiguousarray(np.transpose(data, NCHW_TO_NHWC)),
                                   value.name + "_nhwc")

    def exit_transposes(self) -> None:
        """Readers outside the region (and graph outputs) read an NCHW transpose instead."""
        outputs = {id(v) for v in self.graph.outputs}
        for value in self.values:
            outside = [u for u in value.users if id(u) not in self.members]
            if not outside and id(value) not in outputs:
                continue
            name = value.name
            self.graph.rename(value, name + "_nhwc")
            at = self.graph.nodes.index(value.producer) + 1
            back = _permute(self.graph, value, NHWC_TO_NCHW, at, name)
            for user in outside:
                for index, v in enumerate(list(user.inputs)):
                    if v is value:
                        self.graph.set_input(user, index, back)
            self.graph.outputs = [back if v is value else v for v in self.graph.outputs]


def _permute(graph: Graph, value: Value, perm: tuple[int, ...], at: int, name: str) -> Value:
    """A node at position `at` computing `value` transposed by `perm` (a reshape when only
    dims of size 1 move); returns its output."""
    shape = tuple(value.shape[p] for p in perm)
    moved = [value.shape[p] for p in perm if value.shape[p] != 1]
    kept = [d for d in value.shape if d != 1]
    if moved == kept:
        op, attrs = "reshape", {"shape": shape}
    else:
        op, attrs = "transpose", {"perm": tuple(perm)}
    out = Value(graph.unique_name(name), TensorType(value.dtype, shape))
    node = Node(op, [value], [out], attrs, graph.unique_node_name(name))
    graph.insert(at, node)
    return out
