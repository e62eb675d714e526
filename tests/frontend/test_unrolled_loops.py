"""Scan and Loop are unrolled at compile time: what they refuse, and that an unrolled Loop
that stops on its condition matches ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from kiln.compiler.errors import UnsupportedModelError
from kiln.compiler.interpret import run_graph
from kiln.frontends.onnx import import_model
from kiln.frontends.onnx.converters.scan import MAX_UNROLLED_NODES

F, I64, B = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64, onnx.TensorProto.BOOL


def _scan_model(length: int) -> onnx.ModelProto:
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "x"], ["s2"]),
         helper.make_node("Identity", ["s2"], ["y"])], "body",
        [helper.make_tensor_value_info("s", F, [1]), helper.make_tensor_value_info("x", F, [1])],
        [helper.make_tensor_value_info("s2", F, [1]), helper.make_tensor_value_info("y", F, [1])])
    node = helper.make_node("Scan", ["init", "xs"], ["final", "ys"], body=body,
                            num_scan_inputs=1)
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("init", F, [1]),
                               helper.make_tensor_value_info("xs", F, [length, 1])],
                              [helper.make_tensor_value_info("final", F, [1]),
                               helper.make_tensor_value_info("ys", F, [length, 1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])


def _loop_model(cond_from_body: bool) -> onnx.ModelProto:
    """v doubles each iteration; with cond_from_body the loop stops after iteration 3."""
    nodes = [helper.make_node("Add", ["v", "v"], ["v2"])]
    if cond_from_body:
        nodes.append(helper.make_node("Constant", [], ["three"],
                                      value=helper.make_tensor("three", I64, [], [3])))
        nodes.append(helper.make_node("Less", ["i", "three"], ["c2"]))
    else:
        nodes.append(helper.make_node("Identity", ["c"], ["c2"]))
    body = helper.make_graph(
        nodes, "body",
        [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("c", B, []),
         helper.make_tensor_value_info("v", F, [2])],
        [helper.make_tensor_value_info("c2", B, []), helper.make_tensor_value_info("v2", F, [2])])
    node = helper.make_node("Loop", ["m", "", "v0"], ["v_out"], body=body)
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("m", I64, []),
                               helper.make_tensor_value_info("v0", F, [2])],
                              [helper.make_tensor_value_info("v_out", F, [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])


def test_scan_refuses_an_unrolling_past_the_limit():
    with pytest.raises(UnsupportedModelError, match="over Kiln's limit"):
        import_model(_scan_model(MAX_UNROLLED_NODES))


def test_loop_with_a_run_time_trip_count_asks_to_pin_it():
    with pytest.raises(UnsupportedModelError, match="known at compile time"):
        import_model(_loop_model(False))


def test_loop_stopping_on_its_condition_matches_the_reference():
    model = _loop_model(True)
    v0 = np.array([0.75, 0.5], np.float32)
    trip = np.array(20, np.int64)
    graph = import_model(model, consts={"m": trip})
    (actual,) = run_graph(graph, {"v0": v0}).values()
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {"m": trip, "v0": v0})
    np.testing.assert_allclose(actual, expected)
    np.testing.assert_allclose(actual, v0 * 16)   # four iterations, not twenty
