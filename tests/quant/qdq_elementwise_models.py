"""QDQ forms of the 8-bit elementwise ops: DequantizeLinear on every 8-bit input, the float
op (Add, Mul, Concat, MaxPool, AveragePool, GlobalAveragePool, Sigmoid, LeakyRelu, Relu),
QuantizeLinear on its output, as quantize_static writes them; per tensor, or per channel
(axis 1) where ONNX Runtime runs it (it fuses per-channel Sigmoid, LeakyRelu and
GlobalAveragePool chains into its per-tensor-only QLinear ops, and then fails). Each case is its own single-op chain; several sit side by
side in one graph with random scales and zero points."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_ONNX = {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8}
SHAPE = (2, 8, 9, 10)


class Chains:
    """A graph of independent DQ -> op -> Q chains over 8-bit inputs."""

    def __init__(self, rng: np.random.Generator, dtype):
        self.rng, self.dtype, self.info = rng, np.dtype(dtype), np.iinfo(dtype)
        self.nodes, self.inputs, self.outputs, self.inits, self.feed = [], [], [], {}, {}

    def _params(self, name: str, channels: int, low: float, high: float) -> list[str]:
        shape = (channels,) if channels else ()
        self.inits[f"{name}_s"] = self.rng.uniform(low, high, shape).astype(np.float32)
        self.inits[f"{name}_z"] = self.rng.integers(self.info.min, self.info.max + 1,
                                                    shape).astype(self.dtype)
        return [f"{name}_s", f"{name}_z"]

    def dequantized(self, shape, channels: int = 0) -> str:
        """A new 8-bit input, dequantized (per channel along axis 1 when `channels`)."""
        name = f"x{len(self.inputs)}"
        self.inputs.append(helper.make_tensor_value_info(name, _ONNX[self.dtype], list(shape)))
        self.feed[name] = self.rng.integers(self.info.min, self.info.max + 1,
                                            shape).astype(self.dtype)
        self.nodes.append(helper.make_node("DequantizeLinear",
                                           [name, *self._params(name, channels, 0.005, 0.05)],
                                           [f"{name}_dq"], axis=1))
        return f"{name}_dq"

    def chain(self, op: str, inputs: list[str], channels: int = 0, **attrs) -> None:
        """op(inputs) -> QuantizeLinear (per channel when `channels`) -> a graph output."""
        index = len(self.outputs)
        self.nodes.append(helper.make_node(op, inputs, [f"f{index}"], **attrs))
        self.nodes.append(helper.make_node(
            "QuantizeLinear", [f"f{index}", *self._params(f"y{index}", channels, 0.01, 0.1)],
            [f"y{index}"], axis=1))
        self.outputs.append(helper.make_tensor_value_info(f"y{index}", _ONNX[self.dtype],
                                                          None))

    def same_params(self, source: str) -> list[str]:
        """The scale and zero point names of an input's dequantize (to requantize as it)."""
        return [f"{source[:-3]}_s", f"{source[:-3]}_z"]

    def model(self) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "qdq", self.inputs, self.outputs,
                                  [numpy_helper.from_array(np.asarray(v), k)
                                   for k, v in self.inits.items()])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        return model


def binary(rng, dtype) -> tuple[onnx.ModelProto, dict]:
    """Add and Mul: every pair of values, same shapes, a per-channel operand either side."""
    c = Chains(rng, dtype)
    channel = (1, SHAPE[1], 1, 1)
    values = np.arange(c.info.min, c.info.max + 1)
    for op in ("Add", "Mul"):
        a, b = c.dequantized((1, values.size ** 2)), c.dequantized((1, values.size ** 2))
        c.feed[a[:-3]] = np.repeat(values, values.size)[None].astype(c.dtype)
        c.feed[b[:-3]] = np.tile(values, values.size)[None].astype(c.dtype)
        c.chain(op, [a, b])
        c.chain(op, [c.dequantized(SHAPE), c.dequantized(SHAPE)])
        c.chain(op, [c.dequantized(SHAPE), c.dequantized(channel)])
        c.chain(op, [c.dequantized(channel), c.dequantized(SHAPE)])
    return c.model(), c.feed


def unary(rng, dtype) -> tuple[onnx.ModelProto, dict]:
    c = Chains(rng, dtype)
    for op, attrs in (("Sigmoid", {}), ("LeakyRelu", {"alpha": 0.1}), ("Relu", {})):
        c.chain(op, [c.dequantized(SHAPE)], **attrs)
    return c.model(), c.feed


def per_channel(rng, dtype) -> tuple[onnx.ModelProto, dict]:
    """Per-channel (axis 1) scales where ONNX Runtime runs them: the float chain stays."""
    c = Chains(rng, dtype)
    for op in ("Add", "Mul"):
        c.chain(op, [c.dequantized(SHAPE, SHAPE[1]), c.dequantized(SHAPE)], SHAPE[1])
    c.chain("Relu", [c.dequantized(SHAPE, SHAPE[1])], SHAPE[1])
    return c.model(), c.feed


def pooling(rng, dtype) -> tuple[onnx.ModelProto, dict]:
    c = Chains(rng, dtype)
    window = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    x = c.dequantized(SHAPE)
    c.nodes.append(helper.make_node("MaxPool", [x], ["m"], **window))
    c.nodes.append(helper.make_node("QuantizeLinear", ["m", *c.same_params(x)], ["y_max"]))
    c.outputs.append(helper.make_tensor_value_info("y_max", _ONNX[c.dtype], None))
    c.chain("MaxPool", [c.dequantized(SHAPE)], **window)
    c.chain("AveragePool", [c.dequantized(SHAPE)], **window)
    c.chain("GlobalAveragePool", [c.dequantized(SHAPE)])
    return c.model(), c.feed


def concat(rng, dtype) -> tuple[onnx.ModelProto, dict]:
    c = Chains(rng, dtype)
    for axis in (1, 3):
        c.chain("Concat", [c.dequantized(SHAPE) for _ in range(3)], axis=axis)
    return c.model(), c.feed
