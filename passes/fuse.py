"""Partition the nodes into fused groups: the kernels codegen emits.

- An anchor (an op whose pattern takes an epilogue: conv2d, matmul, the pools, reductions,
  layer_norm; compiler/ops/registry.py) takes the chain of elementwise ops that follows
  it: each next op reads the previous result, which has that one reader and is not a graph
  output, and its output has the anchor's shape and dtype (nothing broadcasts the result
  bigger). Its other inputs (constants, graph inputs, a residual) cannot depend on the
  anchor: every path from the anchor runs through the chain's single readers. Bias add,
  relu/clip and a residual add all land in the anchor's epilogue.
- An elementwise op not taken by an anchor starts an elementwise group, extended the same
  way (same output shape; dtypes may change, e.g. a cast or a comparison).
- A 1x1 conv whose chain feeds a depthwise conv also takes that conv and its chain, where
  the kernel for the pair (codegen/lower/conv_pointwise_depthwise.py) applies: the wide
  tensor between them then never leaves the caches.
- Every other node is a group of its own.
- A group stays inside one loop body (compiler/ops/loops.py): a kernel either runs once per
  iteration or once in all.

Each group's nodes are contiguous in graph.nodes: groups are ordered topologically (ties
keep the original order), which may move a residual's producer ahead of the anchor. No
cycle can arise: only a group's last value leaves it, and it depends on every member.
Group names come from the anchor's node name, made C-identifier friendly and unique.
"""

from __future__ import annotations

import re

import networkx as nx

from ..compiler.ir import FusedGroup, Graph, Node, Value
from ..compiler.kernel_choice import kernel_choice
from ..compiler.ops import op_def
from ..compiler.ops.loops import innermost_loop


def fuse(graph: Graph) -> Graph:
    """One kernel per group, so fused ops pass values in registers instead of memory."""
    fuser = _Fuser(graph)
    choice = kernel_choice(graph)
    groups = []
    for node in graph.nodes:
        if id(node) in fuser.assigned:
            continue
        definition = op_def(node.op)
        if definition.takes_epilogue:
            members = fuser.chain(node, same_dtype=True)
            nxt = fuser.sole_reader(members[-1].output)
            if node.op == "conv2d" and nxt is not None \
                    and choice.fuses_into_depthwise(node, members[1:], nxt):
                members += fuser.chain(nxt, same_dtype=True)
        elif definition.is_elementwise:
            members = fuser.chain(node, same_dtype=False)
        else:
            members = [node]
        fuser.assigned.update(id(n) for n in members)
        groups.append(members)
    ordered = _topological(groups, fuser.position)
    graph.nodes = [n for members in ordered for n in members]
    names: set[str] = set()
    graph.groups = [FusedGroup(_group_name(members[0], names), members) for members in ordered]
    return graph


class _Fuser:
    """What chain-building needs to know: graph outputs and the nodes already taken."""

    def __init__(self, graph: Graph):
        self.position = {id(n): i for i, n in enumerate(graph.nodes)}
        self.graph_outputs = {id(v) for v in graph.outputs}
        self.assigned: set[int] = set()
        self.loop_of = innermost_loop(graph.nodes)

    def chain(self, head: Node, same_dtype: bool) -> list[Node]:
        """`head` followed by the elementwise ops that can run in its kernel."""
        members = [head]
        if len(head.outputs) != 1:
            return members
        result = head.output.type
        while True:
            previous = members[-1].output
            nxt = self.sole_reader(previous)
            if nxt is None or not op_def(nxt.op).is_elementwise or len(nxt.outputs) != 1:
                return members
            out = nxt.output.type
            if out.shape != result.shape or (same_dtype and out.dtype != result.dtype):
                return members
            members.append(nxt)

    def sole_reader(self, value: Value) -> Node | None:
        """The one node reading `value` (through any number of slots), if fusible."""
        readers = {id(u): u for u in value.users}
        if len(readers) != 1 or id(value) in self.graph_outputs:
            return None
        (reader,) = readers.values()
        if id(reader) in self.assigned or value.producer is None \
                or self.loop_of[id(reader)] != self.loop_of[id(value.producer)]:
            return None
        return reader


def _topological(groups: list[list[Node]], position: dict[int, int]) -> list[list[Node]]:
    """Groups in an order where each reads only values of earlier groups; ties keep the
    original order of their first nodes."""
    group_of = {id(n): index for index, members in enumerate(groups) for n in members}
    dag = nx.DiGraph()
    dag.add_nodes_from(range(len(groups)))
    for index, members in enumerate(groups):
        for node in members:
            for value in node.inputs:
                if value.producer is not None and group_of[id(value.producer)] != index:
                    dag.add_edge(group_of[id(value.producer)], index)
    order = nx.lexicographical_topological_sort(dag, key=lambda g: position[id(groups[g][0])])
    return [groups[index] for index in order]


def _group_name(anchor: Node, taken: set[str]) -> str:
    """A readable C-identifier-friendly name derived from the anchor's node name."""
    base = re.sub(r"[^0-9A-Za-z_]+", "_", anchor.name).strip("_") or anchor.op
    if base[0].isdigit():
        base = f"g_{base}"
    name, suffix = base, 1
    while name in taken:
        suffix += 1
        name = f"{base}_{suffix}"
    taken.add(name)
    return name
