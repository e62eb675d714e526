"""QDQ models onto the integer ops: a float conv / matmul between dequantizes and a quantize
becomes one qconv2d / qmatmul over the 8-bit tensors, with the requantize fused.

    dequantize(xq, sx, zx) ─┐
    dequantize(W8, sw, zw) ─┼─ conv2d / matmul [+ bias] [-> relu] [-> quantize(sy, zy)]
    bias: dequantize(B32) or a float constant

      ->  qconv2d / qmatmul(xq, W8, zw, bias, sx * sw / sy, a_zero_point=zx, y_zero_point=zy)

xq is any 8-bit tensor with a per-tensor scale and zero point (a QuantizeLinear's output, or
an 8-bit input); W8 is a constant int8/uint8 weight, per tensor or per output channel
(conv: axis 0; matmul: per column, or per row of the [N, K] weight a Gemm with transB
reads through a transpose). The matmul's bias is the add that follows it. Where a quantize
follows, the op writes its 8-bit result (bias in int32, units of sx * sw; a Relu between
becomes the lower bound zy, and so does a Clip(0, hi) whose hi the quantize saturates
below); where none does, it writes float32 (dequantize epilogue, float bias). Scales
are combined in float32 in ONNX Runtime's order. The nodes left unread are for DCE;
dequantizes of constants that stay float are folded by fold_constants. A Gather of a
dequantized table gathers the 8-bit rows and dequantizes them.

The pass runs before fold_constants, which would otherwise turn every dequantized weight
into float32, and again after the quantize pass has written a float model in QDQ form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..compiler.dtypes import DType
from ..compiler.ir import Graph, Node, TensorType, Value
from ..compiler.ops import evaluate
from .patterns import replace_with, sole_reader

EIGHT_BIT = (DType.int8, DType.uint8)


@dataclass
class Dequantized:
    """value = dequantize(q, scale, zero) with constant scale and zero point."""

    q: Value
    scale: np.ndarray
    zero: np.ndarray


def _dequantized(value: Value) -> Dequantized | None:
    node = value.producer
    if node is None or node.op != "dequantize":
        return None
    q, scale, zero = node.inputs
    if not (scale.is_constant and zero.is_constant):
        return None
    return Dequantized(q, scale.data, zero.data)


def _per_tensor(d: Dequantized | None) -> bool:
    return d is not None and d.q.dtype in EIGHT_BIT and d.scale.size == 1 and d.zero.size == 1


def _along(array: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray | None:
    """A scale or zero point broadcast over `shape` as one value per index of `axis` (None:
    it varies along another axis too)."""
    full = np.moveaxis(np.broadcast_to(array, shape), axis, 0).reshape(shape[axis], -1)
    if full.shape[1] and not np.all(full == full[:, :1]):
        return None
    return np.ascontiguousarray(full[:, 0])


@dataclass
class Weight:
    """A constant 8-bit weight in the layout the integer op takes, with its per-column
    (per output channel) scale and zero point."""

    data: np.ndarray
    scale: np.ndarray
    zero: np.ndarray


def _weight(value: Value, axis: int, transposed: bool = False) -> Weight | None:
    d = _dequantized(value)
    if d is None or not d.q.is_constant or d.q.dtype not in EIGHT_BIT:
        return None
    scale, zero = (_along(a, d.q.shape, axis) for a in (d.scale, d.zero))
    if scale is None or zero is None:
        return None
    data = d.q.data.T if transposed else d.q.data
    return Weight(np.ascontiguousarray(data), scale.astype(np.float32), zero.astype(np.int32))


def _matmul_weight(value: Value) -> Weight | None:
    """B of a matmul: dequantize([K, N]) per column, or transpose(dequantize([N, K])) per
    row (a Gemm with transB)."""
    node = value.producer
    if node is not None and node.op == "transpose" and tuple(node.attrs["perm"]) == (1, 0):
        return _weight(node.inputs[0], 0, transposed=True)
    return _weight(value, 1) if value.type.rank == 2 else None


def _float_bias(value: Value, columns: int) -> np.ndarray | None:
    """A constant (or dequantized constant) bias as one float32 per column."""
    d = _dequantized(value)
    if d is not None and d.q.is_constant:
        data = evaluate("dequantize", [d.q.data, d.scale, d.zero], {})[0]
    elif value.is_constant and value.dtype is DType.float32:
        data = value.data
    else:
        return None
    if data.size not in (1, columns) or (data.size == columns and data.shape[-1] != columns):
        return None
    return np.ascontiguousarray(np.broadcast_to(data.reshape(-1), (columns,)), np.float32)


def _int_bias(value: Value, columns: int, unit: np.ndarray) -> np.ndarray | None:
    """The bias in int32 units of the accumulator (sx * sw[n]): a dequantized int32 bias
    whose scale is that unit as is, anything else rounded."""
    d = _dequantized(value)
    if d is not None and d.q.is_constant and d.q.dtype is DType.int32 and d.q.type.rank == 1 \
            and d.q.shape == (columns,) and not np.any(d.zero):
        scale = _along(d.scale, d.q.shape, 0)
        if scale is not None and np.array_equal(scale.astype(np.float32), unit):
            return d.q.data.astype(np.int32)
    data = _float_bias(value, columns)
    return None if data is None else np.rint(data / unit).astype(np.int32)


def _constant(value: Value) -> bool:
    """A constant, or the dequantize of one (a bias, not a residual)."""
    d = _dequantized(value)
    return value.is_constant or (d is not None and d.q.is_constant)


@dataclass
class Tail:
    """What follows the conv / matmul: its bias add (matmul), a Relu, the quantize."""

    last: Node
    bias: Value | None = None
    relu: bool = False
    y: Dequantized | None = None   # the quantize's scale and zero point (None: float out)


def _tail(graph: Graph, anchor: Node, bias_add: bool) -> Tail:
    tail = Tail(anchor)
    reader = sole_reader(graph, anchor.output, ("add", "relu", "quantize"))
    if reader is not None and reader.op == "add" and bias_add:
        other = reader.inputs[1] if reader.inputs[0] is anchor.output else reader.inputs[0]
        if other is not anchor.output and reader.output.shape == anchor.output.shape \
                and _constant(other):
            tail.bias, tail.last = other, reader
            reader = sole_reader(graph, reader.output, ("relu", "quantize"))
    relu = reader if reader is not None and reader.op in ("relu", "clip") else None
    if relu is not None:
        reader = sole_reader(graph, relu.output, "quantize")
    y = _quantize_of(reader) if reader is not None and reader.op == "quantize" else None
    if relu is not None and relu.op == "clip" and not _clip_is_relu(relu, y):
        return tail
    if relu is not None:
        tail.relu, tail.last = True, relu
    if y is not None:
        tail.y, tail.last = y, reader
    return tail


def _quantize_of(node: Node) -> Dequantized | None:
    """A quantize's output with its constant per-tensor scale and zero point."""
    _, scale, zero = node.inputs
    if scale.is_constant and zero.is_constant and scale.data.size == 1 and zero.data.size == 1:
        return Dequantized(node.output, scale.data, zero.data)
    return None


def _clip_is_relu(clip: Node, y: Dequantized | None) -> bool:
    """clip(x, 0, hi) before a quantize that saturates at or below hi (ReLU6 before a
    quantize of [0, <= 6]) is a Relu there: the quantize's upper bound already clips."""
    low, high = clip.attrs.get("min"), clip.attrs.get("max")
    if y is None or low != 0:
        return False
    if high is None:
        return True
    top = np.iinfo(y.q.dtype.numpy).max - int(y.zero.reshape(()))
    return np.float32(top) * np.float32(y.scale.reshape(())) <= np.float32(high)


def _rewrite(graph: Graph, op: str, x: Dequantized, w: Weight, bias: Value | None,
             tail: Tail, attrs: dict) -> bool:
    """Put the integer op where tail.last stands; False where the bias does not fit."""
    columns = w.scale.shape[0]
    unit = np.float32(x.scale.reshape(())) * w.scale
    if tail.y is not None:
        scale = unit / np.float32(tail.y.scale.reshape(()))
        bias_data = np.zeros(columns, np.int32) if bias is None else \
            _int_bias(bias, columns, unit)
        out, y_zero = tail.y.q.dtype.name, int(tail.y.zero.reshape(()))
        extra = {"y_zero_point": y_zero}
    else:
        scale = unit
        bias_data = np.zeros(columns, np.float32) if bias is None else \
            _float_bias(bias, columns)
        out, extra = "float32", {}
    if bias_data is None:
        return False
    name = tail.last.name
    inputs = [x.q, graph.constant(w.data, f"{name}_qweight"),
              graph.constant(w.zero, f"{name}_qweight_zero"),
              graph.constant(bias_data, f"{name}_qbias"),
              graph.constant(scale.astype(np.float32), f"{name}_qscale")]
    replace_with(graph, tail.last, op, inputs,
                 {"a_zero_point": int(x.zero.reshape(())), "out": out, **extra,
                  "relu": tail.relu, **attrs})
    return True


def _conv(graph: Graph, node: Node) -> bool:
    x = _dequantized(node.inputs[0])
    w = _weight(node.inputs[1], 0)
    if not _per_tensor(x) or w is None:
        return False
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    attrs = {k: node.attrs[k] for k in ("strides", "pads", "dilations", "group")}
    return _rewrite(graph, "qconv2d", x, w, bias, _tail(graph, node, False), attrs)


def _matmul(graph: Graph, node: Node) -> bool:
    x = _dequantized(node.inputs[0])
    w = _matmul_weight(node.inputs[1])
    if not _per_tensor(x) or w is None or node.inputs[0].type.rank < 2:
        return False
    tail = _tail(graph, node, True)
    return _rewrite(graph, "qmatmul", x, w, tail.bias, tail, {})


def _gather(graph: Graph, node: Node) -> bool:
    """gather(dequantize(table8), ids) -> dequantize(gather(table8, ids)): an embedding
    table quantized per tensor (onnxruntime's quantize_dynamic writes Gather so) stays 8-bit
    and only the rows read are dequantized."""
    d = _dequantized(node.inputs[0])
    if d is None or not d.q.is_constant or d.q.dtype not in EIGHT_BIT or d.scale.size != 1 \
            or d.zero.size != 1:
        return False
    out = node.output
    rows = Node("gather", [d.q, *node.inputs[1:]],
                [Value(graph.unique_name(f"{out.name}_rows"), TensorType(d.q.dtype, out.shape))],
                dict(node.attrs), graph.unique_node_name(f"{node.name}_rows"))
    scale, zero = (graph.constant(a.reshape(()), f"{node.name}_{role}")
                   for a, role in ((d.scale, "scale"), (d.zero, "zero")))
    rows_dq = Node("dequantize", [rows.output, scale, zero],
                   [Value(graph.unique_name(f"{out.name}_dq"), out.type)], {},
                   graph.unique_node_name(f"{node.name}_dq"))
    at = graph.nodes.index(node)
    graph.insert(at, rows_dq)
    graph.insert(at, rows)
    graph.replace_uses(out, rows_dq.output)
    return True


RULES = {"conv2d": _conv, "matmul": _matmul, "gather": _gather}


def qdq_to_integer(graph: Graph) -> Graph:
    """Every conv / matmul that reads dequantized 8-bit operands becomes an integer op."""
    for node in list(graph.nodes):
        rule = RULES.get(node.op)
        if rule is not None:
            rule(graph, node)
    return graph
