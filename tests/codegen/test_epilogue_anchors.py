"""Every op whose pattern takes an epilogue gets one: pools, reductions and layer_norm
anchor the elementwise chain after them, and their kernels compute it as ONNX Runtime does."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kiln.compiler.ops import OPS
from kiln.frontends.onnx import import_model
from kiln.passes.manager import run_passes
from reference import assert_matches, run_onnxruntime

_RNG = np.random.default_rng(11)


def _const(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(_RNG.standard_normal(shape).astype(np.float32), name)


def _model(nodes, x_shape, y_shape, inits) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "anchors", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _pool_nchw():
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["p"], ["r"]), helper.make_node("Mul", ["r", "s"], ["y"])]
    return _model(nodes, [1, 5, 9, 9], [1, 5, 5, 5], [_const("s", 5, 1, 1)]), "max_pool2d"


def _pool_nhwc():
    """An average pool between convs runs channels-last on vector targets."""
    inits = [_const("w1", 32, 16, 3, 3), _const("w2", 16, 32, 1, 1), _const("b", 32, 1, 1)]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("AveragePool", ["c1"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Add", ["p", "b"], ["a"]), helper.make_node("Sigmoid", ["a"], ["s"]),
             helper.make_node("Conv", ["s", "w2"], ["y"])]
    return _model(nodes, [1, 16, 12, 12], [1, 16, 6, 6], inits), "avg_pool2d"


def _reduce():
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2], keepdims=0),
             helper.make_node("Sub", ["m", "o"], ["d"]), helper.make_node("Tanh", ["d"], ["y"])]
    return _model(nodes, [3, 4, 10], [3, 4], [_const("o", 4)]), "reduce_mean"


def _layer_norm():
    nodes = [helper.make_node("LayerNormalization", ["x", "g", "b"], ["n"], axis=-1),
             helper.make_node("Mul", ["n", "x"], ["m"]), helper.make_node("Relu", ["m"], ["y"])]
    return _model(nodes, [2, 7, 24], [2, 7, 24], [_const("g", 24), _const("b", 24)]), \
        "layer_norm"


@pytest.mark.parametrize("build", [_pool_nchw, _pool_nhwc, _reduce, _layer_norm])
def test_anchor_takes_its_epilogue_and_matches_onnxruntime(build, compile_and_load):
    model, anchor = build()
    graph = run_passes(import_model(model))
    (group,) = [g for g in graph.groups if g.anchor.op == anchor]
    assert len(group.nodes) == 3, [n.op for n in group.nodes]
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    feed = {"x": _RNG.standard_normal(shape).astype(np.float32)}
    (expected,) = run_onnxruntime(model, feed)
    (actual,) = compile_and_load(model, threads=2).run(feed).values()
    assert_matches(actual, expected)


def test_every_op_declares_its_rules():
    for definition in OPS.values():
        assert definition.pattern and definition.layout_rule
    assert OPS["softmax"].takes_epilogue is False      # its kernel applies none
    assert OPS["concat"].layout_rule == "carried_axis"
    assert all(OPS[op].takes_epilogue for op in ("conv2d", "matmul", "max_pool2d",
                                                 "reduce_sum", "layer_norm"))
