"""Lower ops that simpler ops express well, so codegen and fusion see fewer op kinds.

- `batch_norm(x, scale, shift, mean, var)` with constant parameters (one left over after
  fold_batchnorm) becomes `add(mul(x, k), c)` with per-channel constants shaped [C,1,1]
  (broadcast over the spatial dims): k = scale / sqrt(var + eps), c = shift - mean * k.
  Both are elementwise, so fusion can put them in a conv's or another op's epilogue.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..compiler.ir import Graph, Node, Value
from ..compiler.ops import infer_types


def decompose(graph: Graph) -> Graph:
    """Fewer op kinds for codegen, and elementwise ops that fusion can put in an epilogue."""
    for node in graph:
        rule = RULES.get(node.op)
        if rule is None:
            continue
        replacement = rule(graph, node)
        if replacement is None:
            continue
        graph.replace_uses(node.output, replacement)
        graph.remove(node)
    return graph


def _insert(graph: Graph, before: Node, op: str, inputs: list[Value], name: str) -> Value:
    """Add a node computing `op(inputs)` just before `before`; return its output."""
    types = infer_types(op, [v.type for v in inputs], {})
    node = graph.add_node(op, inputs, types, name=name)
    graph.nodes.remove(node)
    graph.nodes.insert(graph.nodes.index(before), node)
    return node.output


def lower_batch_norm(graph: Graph, bn: Node) -> Value | None:
    """y = x * k + c with per-channel constants; None when a parameter is not constant."""
    x = bn.inputs[0]
    if not all(v.is_constant for v in bn.inputs[1:]) or x.type.rank < 2:
        return None
    scale, shift, mean, var = (v.data.astype(np.float64) for v in bn.inputs[1:])
    k = scale / np.sqrt(var + bn.attrs["epsilon"])
    c = shift - mean * k
    shape = (-1,) + (1,) * (x.type.rank - 2)
    dtype = x.dtype.numpy
    k_value = graph.constant(k.reshape(shape).astype(dtype), f"{bn.name}_scale")
    c_value = graph.constant(c.reshape(shape).astype(dtype), f"{bn.name}_shift")
    scaled = _insert(graph, bn, "mul", [x, k_value], f"{bn.name}_mul")
    return _insert(graph, bn, "add", [scaled, c_value], f"{bn.name}_add")


#: op name -> rule(graph, node) returning the Value that replaces node's output, or None.
RULES: dict[str, Callable[[Graph, Node], Value | None]] = {
    "batch_norm": lower_batch_norm,
}
