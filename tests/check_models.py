"""A small CNN-like model for `kiln check`'s tests: conv, relu, pool, matmul, softmax."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def checked_model() -> onnx.ModelProto:
    rng = np.random.default_rng(11)
    w = (rng.standard_normal((8, 3, 3, 3)) / np.sqrt(27)).astype(np.float32)
    fc = (rng.standard_normal((8, 10)) / np.sqrt(8)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "fc"], ["m"], name="fc"),
             helper.make_node("Softmax", ["m"], ["y"], name="softmax", axis=1)]
    graph = helper.make_graph(
        nodes, "checked", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(fc, "fc")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def branching_model() -> onnx.ModelProto:
    """Two branches of three nodes each, joined by a Concat, in an order where a fault in the
    first branch's first node is followed in graph order by clean nodes of the other branch."""
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="stem"),
             helper.make_node("Sigmoid", ["a"], ["b1"], name="left1"),
             helper.make_node("Tanh", ["a"], ["c1"], name="right1"),
             helper.make_node("Abs", ["c1"], ["c2"], name="right2"),
             helper.make_node("Neg", ["c2"], ["c3"], name="right3"),
             helper.make_node("Exp", ["c3"], ["c4"], name="right4"),
             helper.make_node("Concat", ["b1", "c4"], ["y"], name="join", axis=1)]
    graph = helper.make_graph(
        nodes, "branching", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
