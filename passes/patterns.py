"""Helpers the pattern-rewrite passes share: matching constants and sole readers, and
putting one new node in place of the last node of a matched chain."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..compiler.ir import Graph, Node, Value


def constant_near(value: Value, target: float, rel: float = 1e-3) -> bool:
    """`value` is a constant whose every element is within rel of `target`."""
    if not value.is_constant or value.data.size == 0 or not value.dtype.is_float:
        return False
    data = np.asarray(value.data, np.float64)
    return bool(np.all(np.abs(data - target) <= rel * abs(target)))


def scalar_constant(value: Value) -> float | None:
    """The value of a constant holding one distinct number (any shape), else None."""
    if not value.is_constant or value.data.size == 0:
        return None
    flat = np.asarray(value.data).reshape(-1)
    if not np.all(flat == flat[0]):
        return None
    return float(flat[0])


def sole_reader(graph: Graph, value: Value, op: str | tuple[str, ...]) -> Node | None:
    """The one node reading `value` if it has op `op` and `value` is no graph output."""
    ops = (op,) if isinstance(op, str) else op
    readers = {id(u): u for u in value.users}
    if len(readers) != 1 or any(v is value for v in graph.outputs):
        return None
    (reader,) = readers.values()
    return reader if reader.op in ops else None


def other_input(node: Node, value: Value) -> Value | None:
    """The input of binary `node` that is not `value` (None if both are)."""
    a, b = node.inputs
    if a is value and b is not value:
        return b
    if b is value and a is not value:
        return a
    return None


def replace_with(graph: Graph, last: Node, op: str, inputs: list[Value],
                 attrs: dict[str, Any]) -> Node:
    """Insert `op(inputs)` where `last` stands and make `last`'s readers read it instead.

    The matched nodes before it are left for DCE.
    """
    out = last.output
    node = Node(op, inputs, [Value(graph.unique_name(f"{out.name}_{op}"), out.type)], attrs,
                graph.unique_node_name(f"{last.name}_{op}"))
    graph.insert(graph.nodes.index(last), node)
    graph.replace_uses(out, node.output)
    return node
