"""Fold what is known at compile time, drop identities, and give every graph output a node.

- A node whose inputs are all constants, or a `shape`-kind op (its result is static), is
  evaluated with its numpy reference and its outputs replaced by constants.
- `y = identity(x)` is dropped (readers of y read x), unless y is a graph output that must
  stay a separate buffer (x is a graph input, a constant, or another graph output).
- Afterwards every graph output is produced by a node and listed once: an output that is a
  graph input, a constant or a repeat gets an `identity` copy, so the caller's output buffer
  is always written by a kernel.
"""

from __future__ import annotations

import numpy as np

from ..compiler.ir import Graph, Node
from ..compiler.ops import evaluate, infer_types, op_def

#: Do not fold a node whose result is larger than this many bytes and larger than its inputs:
#: a broadcast of a constant to activation size would bloat the weights for no speed.
MAX_FOLDED_GROWTH = 1 << 20


def fold_constants(graph: Graph) -> Graph:
    """Evaluate what the compiler can know, so codegen never emits a kernel for it."""
    for node in graph:
        if _foldable(node):
            _fold(graph, node)
        elif node.op == "identity":
            _drop_identity(graph, node)
    materialize_outputs(graph)
    return graph


def _foldable(node: Node) -> bool:
    if op_def(node.op).kind == "loop":   # a loop's values change per iteration
        return False
    if op_def(node.op).kind == "shape":
        return True
    if not node.inputs or not all(v.is_constant for v in node.inputs):
        return False
    if not op_def(node.op).folds_at_import:   # kept for a pass, folded as import would have
        return True
    result = sum(v.type.nbytes for v in node.outputs)
    return result <= MAX_FOLDED_GROWTH or result <= sum(v.type.nbytes for v in node.inputs)


def _fold(graph: Graph, node: Node) -> None:
    arrays = [v.data if v.is_constant else np.empty(v.shape, v.dtype.numpy) for v in node.inputs]
    results = evaluate(node.op, arrays, node.attrs)
    graph.remove(node)
    for value, array in zip(node.outputs, results):
        graph.replace_uses(value, graph.constant(array, value.name))


def _drop_identity(graph: Graph, node: Node) -> None:
    (x,), y = node.inputs, node.output
    outputs = {id(v) for v in graph.outputs}
    if id(y) in outputs and (x.producer is None or id(x) in outputs):
        return   # the copy is the point: the output buffer must be written by a kernel
    graph.remove(node)
    graph.replace_uses(y, x)


def materialize_outputs(graph: Graph) -> None:
    """Copy graph outputs that are inputs, constants or repeated, so a node writes each."""
    seen: set[int] = set()
    for index, value in enumerate(graph.outputs):
        if value.producer is None or id(value) in seen:
            types = infer_types("identity", [value.type], {})
            copy = graph.add_node("identity", [value], types, name=f"{value.name}_copy")
            graph.outputs[index] = copy.output
            value = copy.output
        seen.add(id(value))
