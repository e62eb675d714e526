"""Rewrite the GELU chains exporters emit into one `gelu` op.

    x * 0.5 * (1 + erf(x / sqrt(2)))     (x / 1.4142 or x * 0.7071 inside the erf)
    x * 0.5 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))    (approximate="tanh")

in any of the three ways exporters associate the products:

    mul(mul(x, 1 + erf(..)), 0.5)   mul(x, mul(1 + erf(..), 0.5))   mul(mul(x, 0.5), 1 + erf(..))

One `gelu` is a unary elementwise op, so the fuse pass puts it in the epilogue of the matmul
that produces x (one kernel instead of two, and no round trip through memory).
"""

from __future__ import annotations

import math

from ..compiler.ir import Graph, Node, Value
from .dce import dce
from .patterns import constant_near, other_input, replace_with, sole_reader


def fuse_gelu(graph: Graph) -> Graph:
    """Each matched chain becomes gelu(x); the chain's nodes are dropped."""
    changed = False
    for node in graph:
        if node.op in ("erf", "tanh"):
            x = _scaled_input(node) if node.op == "erf" else _tanh_input(node)
            last = _outer_chain(graph, node, x) if x is not None else None
            if last is not None:
                approximate = "none" if node.op == "erf" else "tanh"
                replace_with(graph, last, "gelu", [x], {"approximate": approximate})
                changed = True
    return dce(graph) if changed else graph


def _operands(node: Node | None, op: str) -> tuple[Value, Value] | None:
    """Both orders of a commutative `op` node's inputs, or None."""
    if node is None or node.op != op:
        return None
    return node.inputs[0], node.inputs[1]


def _tanh_input(tanh: Node) -> Value | None:
    """x where tanh's input is sqrt(2/pi) * (x + 0.044715 * x^3), in any operand order."""
    scaled = _operands(tanh.inputs[0].producer, "mul")
    if scaled is None:
        return None
    for inner, k in (scaled, scaled[::-1]):
        total = _operands(inner.producer, "add")
        if not constant_near(k, math.sqrt(2 / math.pi)) or total is None:
            continue
        for x, cubic in (total, total[::-1]):
            term = _operands(cubic.producer, "mul")
            if term is None:
                continue
            for cube, c in (term, term[::-1]):
                if constant_near(c, 0.044715) and _is_cube(cube, x):
                    return x
    return None


def _is_cube(value: Value, x: Value) -> bool:
    """value = x^3 (pow(x, 3), x * x * x or x * (x * x))."""
    node = value.producer
    if node is None:
        return False
    if node.op == "pow":
        return node.inputs[0] is x and constant_near(node.inputs[1], 3.0) \
            if node.inputs[1].dtype.is_float else node.inputs[0] is x and \
            node.inputs[1].is_constant and int(node.inputs[1].data.reshape(-1)[0]) == 3
    if node.op != "mul":
        return False
    a, b = node.inputs
    square = lambda v: v.producer is not None and v.producer.op == "mul" and \
        all(i is x for i in v.producer.inputs)   # noqa: E731
    return (a is x and square(b)) or (b is x and square(a))


def _scaled_input(erf: Node) -> Value | None:
    """x where erf's input is x / sqrt(2) or x * (1 / sqrt(2))."""
    inner = erf.inputs[0].producer
    if inner is None:
        return None
    if inner.op == "div" and constant_near(inner.inputs[1], math.sqrt(2)):
        return inner.inputs[0]
    if inner.op == "mul":
        for a, b in (inner.inputs, reversed(inner.inputs)):
            if constant_near(b, 1 / math.sqrt(2)) and not a.is_constant:
                return a
    return None


def _outer_chain(graph: Graph, core: Node, x: Value) -> Node | None:
    """The last node of x * 0.5 * (1 + core(..)), in any association, else None."""
    erf = core
    if not x.dtype.is_float:
        return None
    one_plus = sole_reader(graph, erf.output, "add")
    if one_plus is None or not constant_near(other_input(one_plus, erf.output) or erf.output,
                                             1.0):
        return None
    product = sole_reader(graph, one_plus.output, "mul")
    if product is None:
        return None
    partner = other_input(product, one_plus.output)
    if partner is None:
        return None
    last = None
    if partner is x:                                   # (x * (1 + erf)) * 0.5
        last = sole_reader(graph, product.output, "mul")
        if last is not None and not constant_near(other_input(last, product.output)
                                                  or product.output, 0.5):
            last = None
    elif constant_near(partner, 0.5):                  # x * ((1 + erf) * 0.5)
        last = sole_reader(graph, product.output, "mul")
        if last is not None and other_input(last, product.output) is not x:
            last = None
    elif partner.producer is not None and partner.producer.op == "mul":   # (x * 0.5) * (..)
        half = partner.producer
        if other_input(half, x) is not None and constant_near(other_input(half, x), 0.5):
            last = product
    if last is None or last.output.type != x.type:
        return None
    return last
