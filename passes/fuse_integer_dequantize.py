"""The float arithmetic after an int32 qmatmul joins its epilogue: onnxruntime's
quantize_dynamic writes each encoder matmul as

    acc = qmatmul(xq, W8, a_zero_point = xz)          (MatMulInteger, out int32)
    y   = cast(acc, float32) * (xs * ws) [+ bias]     (Cast, Mul of the scales, Add)

with xs the run-time scale of DynamicQuantizeLinear and ws, bias constants (per tensor or per
column). That is qmatmul's float32 output, y = float32(acc) * (xs * ws[n]) + bias[n], in the
same order of float operations, so it becomes one qmatmul with xs a run-time input (or with
a constant scale where xs is constant too). The nodes left unread are for DCE.
"""

from __future__ import annotations

import numpy as np

from ..compiler.dtypes import DType
from ..compiler.ir import Graph, Node, Value
from ..compiler.ops.quantized import run_time_inputs
from .patterns import other_input, replace_with, sole_reader


def _per_column(value: Value, columns: int) -> np.ndarray | None:
    """A float32 constant of one value or one per column (trailing axis), as [columns]."""
    if not value.is_constant or value.dtype is not DType.float32:
        return None
    data = value.data
    if data.size == 1:
        return np.full(columns, data.reshape(()), np.float32)
    if data.size == columns and data.shape[-1] == columns:
        return np.ascontiguousarray(data.reshape(-1), np.float32)
    return None


def _scales(value: Value, columns: int) -> tuple[np.ndarray, Value | None] | None:
    """(per-column scale, run-time scale of A or None) of the Mul's other operand: a
    constant, or mul(one run-time float32 value, constant)."""
    constant = _per_column(value, columns)
    if constant is not None:
        return constant, None
    node = value.producer
    if node is None or node.op != "mul":
        return None
    for a_scale, weight in (node.inputs, node.inputs[::-1]):
        per_column = _per_column(weight, columns)
        if per_column is not None and not a_scale.is_constant and a_scale.type.numel == 1 \
                and a_scale.dtype is DType.float32:
            return per_column, a_scale
    return None


def _fuse(graph: Graph, node: Node) -> None:
    columns = node.inputs[1].shape[1]
    cast = sole_reader(graph, node.output, "cast")
    if cast is None or cast.attrs["to"] is not DType.float32:
        return
    mul = sole_reader(graph, cast.output, "mul")
    other = other_input(mul, cast.output) if mul is not None else None
    found = _scales(other, columns) if other is not None else None
    if found is None or mul.output.shape != node.output.shape:
        return
    scale, a_scale = found
    last, bias = mul, np.zeros(columns, np.float32)
    add = sole_reader(graph, mul.output, "add")
    if add is not None and add.output.shape == node.output.shape:
        known = _per_column(other_input(add, mul.output), columns)
        if known is not None:
            last, bias = add, known
    a, b, b_zero = node.inputs[:3]
    inputs = [a, b, b_zero, graph.constant(bias, f"{last.name}_bias"),
              graph.constant(scale, f"{last.name}_scale")]
    a_zero = node.attrs["a_zero_point"]
    if a_scale is not None:
        if a_zero is None:
            inputs.append(node.inputs[3])
        else:
            inputs.append(graph.constant(np.array(a_zero, a.dtype.numpy), f"{last.name}_azp"))
        inputs.append(a_scale)
        a_zero = None
    elif a_zero is None:   # a run-time zero point with a constant scale: keep both inputs
        inputs += [node.inputs[3], graph.constant(np.float32(1), f"{last.name}_ascale")]
    replace_with(graph, last, "qmatmul", inputs, {**node.attrs, "a_zero_point": a_zero,
                                                   "out": "float32"})


def fuse_integer_dequantize(graph: Graph) -> Graph:
    """Every int32 qmatmul whose only reader scales it to float joins that into its epilogue."""
    for node in list(graph.nodes):
        if node.op == "qmatmul" and node.attrs["out"] == "int32" \
                and run_time_inputs(node.attrs) <= 1:
            _fuse(graph, node)
    return graph
