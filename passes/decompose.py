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


def _insert(graph: Graph, before: Node, op: str, inputs: list[Value], name: str,
            **attrs) -> Value:
    """Add a node computing `op(inputs)` just before `before`; return its output."""
    types = infer_types(op, [v.type for v in inputs], attrs)
    node = graph.add_node(op, inputs, types, attrs, name=name)
    graph.nodes.remove(node)
    graph.nodes.insert(graph.nodes.index(before), node)
    return node.output


def lower_batch_norm(graph: Graph, bn: Node) -> Value | None:
    """y = x * k + c with per-channel constants, or the same arithmetic as elementwise ops
    on [C,1,1]-shaped parameters when they are computed at run time."""
    x = bn.inputs[0]
    if x.type.rank < 2:
        return None
    if not all(v.is_constant for v in bn.inputs[1:]):
        return _batch_norm_ops(graph, bn)
    scale, shift, mean, var = (v.data.astype(np.float64) for v in bn.inputs[1:])
    k = scale / np.sqrt(var + bn.attrs["epsilon"])
    c = shift - mean * k
    shape = (-1,) + (1,) * (x.type.rank - 2)
    dtype = x.dtype.numpy
    k_value = graph.constant(k.reshape(shape).astype(dtype), f"{bn.name}_scale")
    c_value = graph.constant(c.reshape(shape).astype(dtype), f"{bn.name}_shift")
    scaled = _insert(graph, bn, "mul", [x, k_value], f"{bn.name}_mul")
    return _insert(graph, bn, "add", [scaled, c_value], f"{bn.name}_add")


def _batch_norm_ops(graph: Graph, bn: Node) -> Value:
    """(x - mean) * scale / sqrt(var + eps) + shift, parameters reshaped to broadcast."""
    x = bn.inputs[0]
    shape = (x.shape[1],) + (1,) * (x.type.rank - 2)
    scale, shift, mean, var = (_insert(graph, bn, "reshape", [v], f"{bn.name}_{role}",
                                       shape=shape)
                               for v, role in zip(bn.inputs[1:], ("scale", "shift", "mean",
                                                                  "var")))
    eps = graph.constant(np.array(bn.attrs["epsilon"], dtype=x.dtype.numpy), f"{bn.name}_eps")
    centered = _insert(graph, bn, "sub", [x, mean], f"{bn.name}_center")
    std = _insert(graph, bn, "sqrt", [_insert(graph, bn, "add", [var, eps], f"{bn.name}_var_eps")],
                  f"{bn.name}_std")
    normalized = _insert(graph, bn, "div", [centered, std], f"{bn.name}_normalize")
    scaled = _insert(graph, bn, "mul", [normalized, scale], f"{bn.name}_scale_mul")
    return _insert(graph, bn, "add", [scaled, shift], f"{bn.name}_shift_add")


#: op name -> rule(graph, node) returning the Value that replaces node's output, or None.
RULES: dict[str, Callable[[Graph, Node], Value | None]] = {
    "batch_norm": lower_batch_norm,
}
