"""Models of ONNX Runtime's com.microsoft 8-bit elementwise ops (QLinearAdd, QLinearMul,
QLinearSigmoid, QLinearLeakyRelu, QLinearConcat, QLinearGlobalAveragePool): several
independent single-node cases side by side in one graph (one compile per op and dtype),
with every 8-bit value (and for the binary ops every pair of values) among the inputs, and
random per-tensor scales and zero points as initializers."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MS = "com.microsoft"
_ONNX = {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8}


class Graph:
    """A graph under construction: 8-bit inputs with their feed, constants, nodes."""

    def __init__(self, rng: np.random.Generator, dtype):
        self.rng, self.dtype = rng, np.dtype(dtype)
        self.info = np.iinfo(dtype)
        self.nodes, self.inputs, self.outputs, self.inits, self.feed = [], [], [], {}, {}

    def data(self, name: str, values: np.ndarray) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, _ONNX[self.dtype],
                                                         list(values.shape)))
        self.feed[name] = values.astype(self.dtype)
        return name

    def params(self, name: str, low: float = 0.002, high: float = 0.05) -> list[str]:
        """[scale, zero point] initializer names: a random scale in [low, high) and a
        random zero point of the dtype."""
        self.inits[f"{name}_scale"] = np.float32(self.rng.uniform(low, high))
        self.inits[f"{name}_zero"] = np.array(self.rng.integers(self.info.min,
                                                                self.info.max + 1),
                                              self.dtype)
        return [f"{name}_scale", f"{name}_zero"]

    def node(self, op: str, inputs: list[str], **attrs) -> None:
        output = f"y{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, [output], domain=MS, **attrs))
        self.outputs.append(helper.make_tensor_value_info(output, _ONNX[self.dtype], None))

    def model(self) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "contrib", self.inputs, self.outputs,
                                  [numpy_helper.from_array(np.asarray(v), k)
                                   for k, v in self.inits.items()])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                        helper.make_opsetid(MS, 1)])
        model.ir_version = 8
        return model

    def every_value(self) -> np.ndarray:
        return np.arange(self.info.min, self.info.max + 1)


def binary(rng, dtype, op: str) -> tuple[onnx.ModelProto, dict]:
    """QLinearAdd / QLinearMul over every pair of values, and broadcast both ways (a
    per-channel operand on either side, a scalar)."""
    g = Graph(rng, dtype)
    values = g.every_value()
    pairs_a = g.data("pa", np.repeat(values, values.size)[None])
    pairs_b = g.data("pb", np.tile(values, values.size)[None])
    full = g.data("full", rng.integers(g.info.min, g.info.max + 1, (2, 16, 5, 7)))
    channel = g.data("channel", rng.integers(g.info.min, g.info.max + 1, (1, 16, 1, 1)))
    scalar = g.data("scalar", rng.integers(g.info.min, g.info.max + 1, (1,)))
    out_scale = (0.02, 0.1) if op == "QLinearAdd" else (0.05, 0.5)
    for i, (a, b) in enumerate([(pairs_a, pairs_b), (full, channel), (channel, full),
                                (scalar, full), (full, full)]):
        g.node(op, [a, *g.params(f"a{i}"), b, *g.params(f"b{i}"),
                    *g.params(f"c{i}", *out_scale)])
    return g.model(), g.feed


def unary(rng, dtype, op: str) -> tuple[onnx.ModelProto, dict]:
    """QLinearSigmoid / QLinearLeakyRelu of every value under several scales."""
    g = Graph(rng, dtype)
    x = g.data("x", g.every_value()[None])
    for i in range(6):
        if op == "QLinearSigmoid":
            g.node(op, [x, *g.params(f"x{i}", 0.005, 0.1), *g.params(f"y{i}", 0.002, 0.008)])
        else:
            g.node(op, [x, *g.params(f"x{i}"), *g.params(f"y{i}")],
                   alpha=float(rng.uniform(0.01, 0.3)))
    return g.model(), g.feed


def concat(rng, dtype) -> tuple[onnx.ModelProto, dict]:
    """QLinearConcat of three inputs (one quantized as the output, passed as is) along
    axes 0 and 2."""
    g = Graph(rng, dtype)
    values = np.broadcast_to(g.every_value(), (2, 3, 256))
    xs = [g.data(f"x{i}", values) for i in range(3)]
    for axis in (0, 2):
        out = g.params(f"y{axis}")
        triples = []
        for i, x in enumerate(xs):
            triples += [x, *(out if i == 1 else g.params(f"x{axis}_{i}"))]
        g.node("QLinearConcat", [*out, *triples], axis=axis)
    return g.model(), g.feed


def global_average_pool(rng, dtype) -> tuple[onnx.ModelProto, dict]:
    """QLinearGlobalAveragePool, NCHW and channels_last, over odd image sizes."""
    g = Graph(rng, dtype)
    for i, (shape, last) in enumerate([((2, 16, 7, 7), 0), ((1, 8, 13, 11), 0),
                                       ((2, 5, 3, 24), 1), ((1, 1, 1, 8), 1)]):
        x = g.data(f"x{i}", rng.integers(g.info.min, g.info.max + 1, shape))
        x_params = g.params(f"x{i}")
        g.node("QLinearGlobalAveragePool",
               [x, *x_params, *g.params(f"y{i}")], channels_last=last)
    return g.model(), g.feed
