"""Rewrite the decomposed LayerNorm older exporters emit (before opset 17) into `layer_norm`.

    m = reduce_mean(x, trailing axes)      d = x - m
    v = reduce_mean(d ** 2 | d * d)        y = d / sqrt(v + eps)     [* gamma] [+ beta]

becomes layer_norm(x, gamma or ones, beta, axis, eps): one kernel with two passes over each
row, instead of seven kernels and four round trips through memory. gamma and beta must be
constants that vary only along the normalized axes.
"""

from __future__ import annotations

import numpy as np

from ..compiler.ir import Graph, Node, Value
from .dce import dce
from .patterns import other_input, replace_with, scalar_constant, sole_reader


def fuse_layer_norm(graph: Graph) -> Graph:
    """Each matched chain becomes one layer_norm; the chain's nodes are dropped."""
    changed = False
    for node in graph:
        if node.op == "reduce_mean":
            match = _match(graph, node)
            if match is not None:
                x, last, axis, eps, gamma, beta = match
                norm_shape = x.shape[axis:]
                scale = _param(graph, gamma, norm_shape, 1.0, f"{last.name}_gamma")
                inputs = [x, scale]
                if beta is not None:
                    inputs.append(_param(graph, beta, norm_shape, 0.0, f"{last.name}_beta"))
                replace_with(graph, last, "layer_norm", inputs, {"axis": axis, "epsilon": eps})
                changed = True
    return dce(graph) if changed else graph


def _trailing_axis(node: Node) -> int | None:
    """The first reduced axis if `node` reduces trailing axes with keepdims, else None."""
    rank = node.inputs[0].type.rank
    axes = sorted(node.attrs.get("axes", ()))
    if not axes or not node.attrs.get("keepdims") or axes != list(range(axes[0], rank)):
        return None
    return axes[0]


def _match(graph: Graph, mean: Node):
    """(x, last node, axis, eps, gamma, beta) for a decomposed LayerNorm starting at `mean`."""
    x = mean.inputs[0]
    axis = _trailing_axis(mean)
    if axis is None or not x.dtype.is_float:
        return None
    sub = sole_reader(graph, mean.output, "sub")
    if sub is None or sub.inputs[0] is not x or sub.inputs[1] is not mean.output:
        return None
    d = sub.output
    readers = {id(u): u for u in d.users}
    if len(readers) != 2 or any(v is d for v in graph.outputs):
        return None
    square = next((u for u in readers.values() if _is_square(u, d)), None)
    divide = next((u for u in readers.values() if u.op == "div" and u.inputs[0] is d), None)
    if square is None or divide is None:
        return None
    var = sole_reader(graph, square.output, "reduce_mean")
    if var is None or _trailing_axis(var) != axis:
        return None
    plus = sole_reader(graph, var.output, "add")
    eps_value = other_input(plus, var.output) if plus is not None else None
    eps = scalar_constant(eps_value) if eps_value is not None else None
    if eps is None:
        return None
    root = sole_reader(graph, plus.output, "sqrt")
    if root is None or divide.inputs[1] is not root.output:
        return None
    last, gamma, beta = divide, None, None
    scaled = sole_reader(graph, divide.output, "mul")
    if scaled is not None and _is_param(other_input(scaled, divide.output), x, axis):
        last, gamma = scaled, other_input(scaled, divide.output)
    shifted = sole_reader(graph, last.output, "add")
    if shifted is not None and _is_param(other_input(shifted, last.output), x, axis):
        last, beta = shifted, other_input(shifted, last.output)
    if last.output.type != x.type:
        return None
    return x, last, axis, eps, gamma, beta


def _is_square(node: Node, d: Value) -> bool:
    if node.op == "mul":
        return node.inputs[0] is d and node.inputs[1] is d
    return node.op == "pow" and node.inputs[0] is d and scalar_constant(node.inputs[1]) == 2.0


def _is_param(value: Value | None, x: Value, axis: int) -> bool:
    """A constant that broadcasts against x and varies only along axes [axis, rank)."""
    if value is None or not value.is_constant or value.type.rank > x.type.rank:
        return False
    leading = x.type.rank - value.type.rank
    for position, size in enumerate(value.shape):
        if position + leading < axis and size != 1:
            return False
        if size not in (1, x.shape[position + leading]):
            return False
    return True


def _param(graph: Graph, value: Value | None, norm_shape: tuple[int, ...], fill: float,
           name: str) -> Value:
    """`value` laid out over the normalized dims (ones/zeros when absent)."""
    dtype = np.float32
    if value is None:
        return graph.constant(np.full(norm_shape, fill, dtype), name)
    data = np.asarray(value.data)
    data = data.reshape(data.shape[max(0, data.ndim - len(norm_shape)):]) \
        if data.ndim > len(norm_shape) else data
    return graph.constant(np.ascontiguousarray(np.broadcast_to(data, norm_shape)
                                               ).astype(value.dtype.numpy), name)
