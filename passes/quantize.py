"""Post-training quantization of a float model: annotate each quantized tensor with its
scale and zero point, and rewrite the graph into the form the integer passes read.

What it reads: graph.metadata["quantize"], a QuantizeRequest (absent: nothing to do).
What it writes: graph.metadata["quantized"], one QuantizedTensor per activation a quantized
layer reads, in graph order.

A layer is a conv2d (ungrouped) or a 2-D-weight matmul by a constant float32 weight whose
node is not named in keep_float. Grouped and depthwise convs stay in float: the integer
kernel they would get is the portable qconv_direct loop, measured slower than the float
NHWC depthwise kernel (and their few weights per channel gain little from 8 bits). Static int8 (`mode="int8"`, ranges calibrated):

    x ─ layer(x, W)    ->   x ─ quantize(sx, zx) ─ dequantize ─┬─ layer(·, dequantize(W8, sw))
                                                               └─ every other reader of x

activations uint8, per tensor, asymmetric over the calibrated range widened to hold 0;
weights int8, symmetric per output channel ([-127, 127]). qdq_to_integer then turns each
layer into qconv2d / qmatmul, writing 8-bit where the next quantize is its only reader; the
others read the dequantized tensor, so every quantized tensor holds the same values for all
its readers. With ranges None (the calibration build) only the annotation is made: it names
the float tensors whose ranges calibration records.

Dynamic (`mode="dynamic"`, matmuls only): x is quantized to uint8 at run time over its
whole range (DynamicQuantizeLinear's arithmetic), the weight int8 per column, and

    y = cast(qmatmul(xq, W8, a_zero_point = run time), float32) * (x_scale * w_scale)

which fuse_integer_dequantize folds into one qmatmul with a float epilogue (and the bias
add after it), as it does for the models onnxruntime's quantize_dynamic writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..compiler.dtypes import DType
from ..compiler.ir import Graph, Node, Value
from ..compiler.ops import infer_types

#: what the pass is asked to do, in graph.metadata
REQUEST = "quantize"
#: what it records, in graph.metadata
RECORD = "quantized"
MODES = ("int8", "dynamic")
#: the symmetric int8 weight range (-128 left out, so the range is symmetric)
WEIGHT_MAX = 127


@dataclass(frozen=True)
class QuantizeRequest:
    """How to quantize: the mode, the layers kept in float (node names: the IR node a
    converter writes first has its ONNX node's name) and, for int8, each activation's
    calibrated (low, high) by tensor name."""

    mode: str
    keep_float: frozenset[str] = frozenset()
    ranges: Mapping[str, tuple[float, float]] | None = None


@dataclass
class QuantizedTensor:
    """One activation read by quantized layers: its scale and zero point (None before
    calibration, and for a run-time scale), the layers reading it, and the value holding it
    as the quantized model computes it (dequantized), for the accuracy report."""

    name: str
    layers: list[str] = field(default_factory=list)
    scale: float | None = None
    zero_point: int | None = None
    observed: Value | None = None


@dataclass(frozen=True)
class Layer:
    """A node the pass quantizes: its float activation input, its constant weight, and the
    weight's output-channel axis."""

    node: Node
    activation: Value
    weight: Value
    axis: int


def layers(graph: Graph, keep_float: frozenset[str] = frozenset(),
           ops: tuple[str, ...] = ("conv2d", "matmul")) -> list[Layer]:
    """The layers of `graph` quantization applies to, in graph order (not one reading a
    graph output: that tensor stays as the model gives it)."""
    found = []
    for node in graph.nodes:
        if node.op not in ops or node.name in keep_float:
            continue
        x, w = node.inputs[:2]
        if x.is_constant or x.dtype is not DType.float32 or not w.is_constant \
                or w.dtype is not DType.float32 or any(v is x for v in graph.outputs):
            continue
        if node.op == "conv2d":
            if node.attrs["group"] == 1:
                found.append(Layer(node, x, w, 0))
        elif w.type.rank == 2 and x.type.rank >= 2:
            found.append(Layer(node, x, w, 1))
    return found


def activation_params(low: float, high: float) -> tuple[np.float32, np.uint8]:
    """uint8 scale and zero point covering [low, high] widened to hold 0 (0 exactly
    representable, as ONNX Runtime's quantizers make it)."""
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    scale = np.float32((high - low) / 255.0) if high > low else np.float32(1.0)
    zero = np.clip(np.rint(-low / np.float64(scale)), 0, 255)
    return scale, np.uint8(zero)


def weight_params(weight: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(int8 weight, float32 scale per output channel) of a symmetric per-channel
    quantization; the scale keeps `weight`'s rank (size 1 but on `axis`) to broadcast."""
    others = tuple(i for i in range(weight.ndim) if i != axis)
    peak = np.max(np.abs(weight), axis=others, keepdims=True).astype(np.float32)
    scale = np.where(peak > 0, peak / np.float32(WEIGHT_MAX), np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(weight / scale), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int8)
    return q, scale


class _Builder:
    """Nodes inserted in order at one place of the graph, their types inferred."""

    def __init__(self, graph: Graph, at: int, hint: str):
        self.graph, self.at, self.hint = graph, at, hint

    def const(self, data: Any, role: str) -> Value:
        return self.graph.constant(np.asarray(data), f"{self.hint}_{role}")

    def emit(self, op: str, inputs: list[Value], role: str, **attrs: Any) -> Value:
        (type_,) = infer_types(op, [v.type for v in inputs], attrs)
        node = Node(op, inputs, [Value(self.graph.unique_name(f"{self.hint}_{role}"), type_)],
                    attrs, self.graph.unique_node_name(f"{self.hint}_{role}"))
        self.graph.insert(self.at, node)
        self.at += 1
        return node.output


def _after(graph: Graph, value: Value) -> int:
    """The position just after `value`'s producer (the start for a graph input)."""
    return 0 if value.producer is None else graph.nodes.index(value.producer) + 1


def _read_instead(graph: Graph, old: Value, new: Value, skip: Node) -> None:
    """Every node reading `old` (but `skip`) reads `new`; graph outputs keep `old`."""
    for node in list({id(u): u for u in old.users}.values()):
        if node is skip:
            continue
        for index, value in enumerate(node.inputs):
            if value is old:
                graph.set_input(node, index, new)


def _static_activation(graph: Graph, x: Value, low: float, high: float,
                       record: QuantizedTensor) -> None:
    scale, zero = activation_params(low, high)
    build = _Builder(graph, _after(graph, x), x.name)
    q = build.emit("quantize", [x, build.const(scale, "scale"), build.const(zero, "zero")],
                   "quantized")
    dq = build.emit("dequantize", [q, build.const(scale, "dq_scale"),
                                   build.const(zero, "dq_zero")], "dequantized")
    _read_instead(graph, x, dq, q.producer)
    record.scale, record.zero_point, record.observed = float(scale), int(zero), dq


def _static_weight(graph: Graph, layer: Layer) -> None:
    q, scale = weight_params(layer.weight.data, layer.axis)
    name = layer.node.name
    dq = Node("dequantize", [graph.constant(q, f"{name}_w8"), graph.constant(scale, f"{name}_ws"),
                             graph.constant(np.zeros(scale.shape, np.int8), f"{name}_wz")],
              [Value(graph.unique_name(f"{name}_wdq"), layer.weight.type)], {},
              graph.unique_node_name(f"{name}_wdq"))
    graph.insert(graph.nodes.index(layer.node), dq)
    graph.set_input(layer.node, 1, dq.output)


def _dynamic_activation(graph: Graph, x: Value) -> tuple[Value, Value, Value]:
    """(uint8 x, its scale, its zero point) as DynamicQuantizeLinear computes them at run
    time: the range of x widened to hold 0, over 255 steps."""
    build = _Builder(graph, _after(graph, x), f"{x.name}_dyn")
    axes = tuple(range(x.type.rank))
    zero = build.const(np.float32(0), "zero_f")
    high = build.emit("max", [build.emit("reduce_max", [x], "high", axes=axes, keepdims=False),
                              zero], "high0")
    low = build.emit("min", [build.emit("reduce_min", [x], "low", axes=axes, keepdims=False),
                             zero], "low0")
    span = build.emit("sub", [high, low], "span")
    span = build.emit("where", [build.emit("equal", [high, low], "flat"),
                                build.const(np.float32(1), "one"), span], "span1")
    scale = build.emit("div", [span, build.const(np.float32(255), "steps")], "scale")
    start = build.emit("sub", [zero, build.emit("div", [low, scale], "low_q")], "start")
    zp = build.emit("round", [build.emit("clip", [start], "zp_c", min=0.0, max=255.0)], "zp_f")
    q = build.emit("add", [build.emit("round", [build.emit("div", [x, scale], "x_s")], "x_r"),
                           zp], "x_z")
    q = build.emit("cast", [build.emit("clip", [q], "x_c", min=0.0, max=255.0)], "x_u8",
                   to=DType.uint8)
    return q, scale, build.emit("cast", [zp], "zp", to=DType.uint8)


def _dynamic_layer(graph: Graph, layer: Layer, xq: Value, x_scale: Value, x_zero: Value
                   ) -> None:
    node, name = layer.node, layer.node.name
    q, scale = weight_params(layer.weight.data, layer.axis)
    columns = q.shape[1]
    build = _Builder(graph, graph.nodes.index(node), name)
    acc = build.emit("qmatmul", [xq, graph.constant(q, f"{name}_w8"),
                                 graph.constant(np.zeros(columns, np.int32), f"{name}_wz"),
                                 x_zero], "acc", a_zero_point=None, out="int32",
                     y_zero_point=0, relu=False)
    unit = build.emit("mul", [x_scale, build.const(scale.reshape(columns), "ws")], "unit")
    y = build.emit("mul", [build.emit("cast", [acc], "accf", to=DType.float32), unit], "y")
    graph.replace_uses(node.output, y)


def quantize(graph: Graph) -> Graph:
    """Quantize the layers graph.metadata["quantize"] asks for (see the module docstring)."""
    request: QuantizeRequest | None = graph.metadata.get(REQUEST)
    if request is None:
        return graph
    dynamic = request.mode == "dynamic"
    found = layers(graph, request.keep_float, ("matmul",) if dynamic else ("conv2d", "matmul"))
    records: dict[str, QuantizedTensor] = {}
    for layer in found:
        x = layer.activation
        record = records.setdefault(x.name, QuantizedTensor(x.name, observed=x))
        record.layers.append(layer.node.name)
    if dynamic:
        quantized: dict[str, tuple[Value, Value, Value]] = {}
        for layer in found:
            x = layer.activation
            if x.name not in quantized:
                quantized[x.name] = _dynamic_activation(graph, x)
            _dynamic_layer(graph, layer, *quantized[x.name])
    elif request.ranges is not None:
        for record in records.values():
            _static_activation(graph, record.observed, *request.ranges[record.name], record)
        for layer in found:
            _static_weight(graph, layer)
    graph.metadata[RECORD] = list(records.values())
    return graph
