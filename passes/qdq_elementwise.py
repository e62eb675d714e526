"""QDQ chains around the 8-bit elementwise ops onto integer arithmetic: a float add, mul,
concat, max pool, global average pool (reduce_mean over the spatial axes), sigmoid or leaky
relu whose inputs are per-tensor dequantizes of 8-bit tensors and whose one reader
is a per-tensor quantize becomes what ONNX Runtime runs for the same chain (it fuses them
into its QLinear* ops; the formulas are compiler/qlinear.py's), reading and writing 8-bit:

    quantize(add(dequantize(a), dequantize(b)))   ->  qlinear add of a and b
    quantize(sigmoid(dequantize(x)))              ->  gather(table256, x)
    quantize(max_pool2d(dequantize(x)))           ->  max_pool2d(x) [-> requantize table]
    ...

A max commutes with the (monotone) requantize, so the 8-bit max pool is exact. Per-axis
scales, Relu, AveragePool and anything else stay the float chain the importer wrote: ONNX
Runtime does not fuse them either, and that chain is ONNX's own definition (one fused
elementwise kernel, 8-bit in and out, for the elementwise ones). conv / matmul / gather are qdq_to_integer's; this pass runs after
it (and fuse_integer_dequantize), before fold_constants.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..compiler import qlinear
from ..compiler.ir import Graph, Node, Value
from ..compiler.ops import infer_types
from ..compiler.ops.quantized import EIGHT_BIT
from .patterns import sole_reader


class _Inserter:
    """qlinear's Builder over a graph: each op goes in before `anchor`, in order."""

    def __init__(self, graph: Graph, anchor: Node):
        self.graph, self.name = graph, anchor.name
        self.at = graph.nodes.index(anchor)

    def emit(self, op: str, inputs: list[Value], **attrs: Any) -> Value:
        (out_type,) = infer_types(op, [v.type for v in inputs], attrs)
        node = Node(op, list(inputs), [Value(self.graph.unique_name(f"{self.name}_{op}"),
                                             out_type)],
                    attrs, self.graph.unique_node_name(f"{self.name}_{op}"))
        self.graph.insert(self.at, node)
        self.at += 1
        return node.output

    def const(self, data: Any, dtype: Any = None, name: str = "") -> Value:
        return self.graph.constant(np.asarray(data, dtype), name or f"{self.name}_const")


def _params(scale: Value, zero: Value) -> qlinear.QParams | None:
    if not (scale.is_constant and zero.is_constant) or scale.data.size != 1 \
            or zero.data.size != 1:
        return None
    return qlinear.QParams(np.float32(scale.data.reshape(())), int(zero.data.reshape(())))


def _dequantized(value: Value) -> tuple[Value, qlinear.QParams] | None:
    """(the 8-bit tensor, its per-tensor parameters) when `value` dequantizes one."""
    node = value.producer
    if node is None or node.op != "dequantize" or node.inputs[0].dtype not in EIGHT_BIT:
        return None
    params = _params(*node.inputs[1:])
    return None if params is None else (node.inputs[0], params)


def _unary(f: Callable[[dict], Callable | None]):
    """A rule for a unary op: the table of f(attrs) (None: identity) gathered by x."""
    def rule(b: _Inserter, node: Node, inputs, out: qlinear.QParams) -> Value:
        ((x, params),) = inputs
        entries = qlinear.table(x.dtype, params, out, f(node.attrs))
        return qlinear.lookup(b, x, entries, f"{node.name}_table")
    return rule


def _max_pool(b: _Inserter, node: Node, inputs, out: qlinear.QParams) -> Value:
    ((x, params),) = inputs
    pooled = b.emit("max_pool2d", [x], **node.attrs)
    if params == out:
        return pooled
    return qlinear.lookup(b, pooled, qlinear.table(x.dtype, params, out), f"{node.name}_table")


def _global_average(b: _Inserter, node: Node, inputs, out: qlinear.QParams) -> Value | None:
    ((x, params),) = inputs
    axes = tuple(node.attrs["axes"])
    if not node.attrs["keepdims"] or axes != tuple(range(2, x.type.rank)):
        return None
    return qlinear.average(b, x, params, out, axes)


RULES: dict[str, Callable] = {
    "add": lambda b, node, inputs, out: qlinear.add(b, *inputs[0], *inputs[1], out),
    "mul": lambda b, node, inputs, out: qlinear.mul(b, *inputs[0], *inputs[1], out),
    "concat": lambda b, node, inputs, out: qlinear.concat(b, inputs, out, node.attrs["axis"],
                                                          f"{node.name}_table"),
    "sigmoid": _unary(lambda attrs: qlinear.sigmoid),
    "leaky_relu": _unary(lambda attrs: qlinear.leaky_relu(attrs["alpha"])),
    "max_pool2d": _max_pool,
    "reduce_mean": _global_average,
}


def _rewrite(graph: Graph, node: Node) -> None:
    quantize = sole_reader(graph, node.output, "quantize")
    if quantize is None:
        return
    inputs = [_dequantized(v) for v in node.inputs]
    out = _params(*quantize.inputs[1:])
    if out is None or not inputs or None in inputs \
            or any(q.dtype is not quantize.output.dtype for q, _ in inputs):
        return
    result = RULES[node.op](_Inserter(graph, quantize), node, inputs, out)
    if result is not None:
        graph.replace_uses(quantize.output, result)


def qdq_elementwise(graph: Graph) -> Graph:
    """Every per-tensor dequantize -> elementwise op -> quantize chain onto 8-bit integer
    arithmetic (the replaced nodes are left for DCE)."""
    for node in list(graph.nodes):
        if node.op in RULES:
            _rewrite(graph, node)
    return graph
