"""Rewrite the gated activations exporters spell out into one unary op.

    x * sigmoid(x)                  -> swish(x)              (SiLU: EfficientNet, YOLO, ...)
    x * sigmoid(alpha * x)          -> swish(x, alpha)       (ONNX Swish, opset 24)
    x * hard_sigmoid(x, 1/6, 1/2)   -> hard_swish(x)         (HardSwish before opset 14)
    x * clip(x + 3, 0, 6) / 6       -> hard_swish(x)         (MobileNetV3 as decomposed;
                                                              also * (1/6), either side)

Either operand order of each product. The gate reads x and so does the product, so the
producer of x has two readers and the fuse pass could not take the gate into its epilogue:
the conv would write x, a Sigmoid group read it and write the gate, a Mul group read both.
One unary op reads x once, and joins the conv's or matmul's epilogue.
"""

from __future__ import annotations

from ..compiler.ir import Graph, Node, Value
from .dce import dce
from .patterns import constant_near, other_input, replace_with, scalar_constant, sole_reader


def fuse_swish(graph: Graph) -> Graph:
    """Each matched product becomes swish(x) or hard_swish(x); the gate is left for DCE."""
    changed = False
    for node in list(graph):
        if node.op not in ("sigmoid", "hard_sigmoid", "clip"):
            continue
        match = _match(graph, node)
        if match is not None:
            last, x, op, attrs = match
            replace_with(graph, last, op, [x], attrs)
            changed = True
    return dce(graph) if changed else graph


def _match(graph: Graph, gate: Node) -> tuple[Node, Value, str, dict] | None:
    """(the product's last node, x, the op, its attributes) for a gate of x, else None."""
    if gate.op == "sigmoid":   # x * sigmoid(x) first: x may itself be a scaled value
        for x, alpha in ((gate.inputs[0], 1.0), _scaled(gate.inputs[0])):
            product = _product_with(graph, gate, x)
            if product is not None:
                return product, x, "swish", {"alpha": alpha}
        return None
    if gate.op == "hard_sigmoid":
        x = gate.inputs[0]
        if not (abs(gate.attrs.get("alpha", 0.2) - 1 / 6) < 1e-6
                and abs(gate.attrs.get("beta", 0.5) - 0.5) < 1e-6):
            return None
        product = _product_with(graph, gate, x)
        return None if product is None else (product, x, "hard_swish", {})
    return _relu6_gate(graph, gate)


def _scaled(value: Value) -> tuple[Value, float]:
    """(x, alpha) for value = x * alpha with a constant alpha, else (value, 1.0)."""
    node = value.producer
    if node is not None and node.op == "mul":
        for a, b in (node.inputs, node.inputs[::-1]):
            alpha = scalar_constant(b)
            if alpha is not None and not a.is_constant and b.dtype.is_float \
                    and b.type.numel == 1:
                return a, alpha
    return value, 1.0


def _product_with(graph: Graph, gate: Node, x: Value) -> Node | None:
    """The mul that multiplies `gate`'s sole result by x, keeping x's type, else None."""
    product = sole_reader(graph, gate.output, "mul")
    if product is None or other_input(product, gate.output) is not x \
            or product.output.type != x.type or not x.dtype.is_float:
        return None
    return product


def _relu6_gate(graph: Graph, clip: Node) -> tuple[Node, Value, str, dict] | None:
    """x * clip(x + 3, 0, 6) / 6, the sixth taken before or after the product."""
    if not (clip.attrs.get("min") == 0.0 and clip.attrs.get("max") == 6.0):
        return None
    shift = clip.inputs[0].producer
    if shift is None or shift.op != "add" or len(clip.inputs) != 1:
        return None
    x = next((a for a, b in (shift.inputs, shift.inputs[::-1])
              if constant_near(b, 3.0) and b.type.numel == 1 and not a.is_constant), None)
    if x is None or not x.dtype.is_float:
        return None
    first = sole_reader(graph, clip.output, ("mul", "div"))
    if first is None:
        return None
    if first.op == "mul" and other_input(first, clip.output) is x:
        last = _sixth(graph, first.output)                      # (x * clip) / 6
    elif _is_sixth(first, clip.output):
        last = _product_with_value(graph, first.output, x)      # x * (clip / 6)
    else:
        return None
    if last is None or last.output.type != x.type:
        return None
    return last, x, "hard_swish", {}


def _is_sixth(node: Node, value: Value) -> bool:
    """node is value / 6 or value * (1/6)."""
    if node.inputs[0] is not value:
        other = other_input(node, value) if node.op == "mul" else None
    else:
        other = node.inputs[1]
    if other is None or other.type.numel != 1:
        return False
    return constant_near(other, 6.0) if node.op == "div" else constant_near(other, 1 / 6)


def _sixth(graph: Graph, value: Value) -> Node | None:
    node = sole_reader(graph, value, ("mul", "div"))
    return node if node is not None and _is_sixth(node, value) else None


def _product_with_value(graph: Graph, value: Value, x: Value) -> Node | None:
    node = sole_reader(graph, value, "mul")
    return node if node is not None and other_input(node, value) is x else None
