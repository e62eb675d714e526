"""How Scan and Loop import: as one body between loop markers whatever their length, unrolled
only where a loop-carried value changes shape, and what they refuse."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from kiln.compiler.errors import UnsupportedModelError
from kiln.compiler.interpret import run_graph
from kiln.frontends.onnx import import_model
from kiln.frontends.onnx.converters.scan import MAX_UNROLLED_NODES
from reference import run_onnxruntime

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


def _growing_model(trip: str) -> onnx.ModelProto:
    """v grows by one element per iteration (Concat): only an unrolled loop has its shapes."""
    body = helper.make_graph(
        [helper.make_node("Concat", ["v", "one"], ["v2"], axis=0),
         helper.make_node("Identity", ["c"], ["c2"])], "body",
        [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("c", B, []),
         helper.make_tensor_value_info("v", F, None)],
        [helper.make_tensor_value_info("c2", B, []), helper.make_tensor_value_info("v2", F, None)],
        [onnx.numpy_helper.from_array(np.ones(1, np.float32), "one")])
    node = helper.make_node("Loop", ["m", "", "v0"], ["v_out"], body=body)
    inputs = [helper.make_tensor_value_info("v0", F, [2])]
    inits = []
    if trip == "input":
        inputs.append(helper.make_tensor_value_info("m", I64, []))
    else:
        inits.append(onnx.numpy_helper.from_array(np.array(int(trip), np.int64), "m"))
    graph = helper.make_graph([node], "g", inputs,
                              [helper.make_tensor_value_info("v_out", F, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])


def test_a_long_scan_imports_its_body_once():
    graph = import_model(_scan_model(MAX_UNROLLED_NODES))
    histogram = graph.op_histogram()
    assert histogram["loop_begin"] == 1 and histogram["add"] == 1, histogram


def test_the_interpreter_runs_a_scan_as_a_loop():
    model = _scan_model(5)
    feed = {"init": np.array([0.5], np.float32),
            "xs": np.arange(5, dtype=np.float32).reshape(5, 1)}
    graph = import_model(model)
    assert graph.op_histogram()["loop_begin"] == 1
    for actual, expected in zip(run_graph(graph, feed).values(), run_onnxruntime(model, feed)):
        np.testing.assert_allclose(actual, expected)


@pytest.mark.parametrize("trips", [0, 2, 7])
def test_the_interpreter_stops_a_loop_on_its_trip_count_and_condition(trips):
    for cond_from_body in (False, True):
        model = _loop_model(cond_from_body)
        feed = {"m": np.array(trips, np.int64), "v0": np.array([0.75, -1.5], np.float32)}
        (actual,) = run_graph(import_model(model), feed).values()
        (expected,) = run_onnxruntime(model, feed)
        np.testing.assert_allclose(actual, expected)


def test_a_state_that_grows_is_unrolled():
    model = _growing_model("3")
    graph = import_model(model)
    assert "loop_begin" not in graph.op_histogram()
    v0 = np.array([0.75, 0.5], np.float32)
    (actual,) = run_graph(graph, {"v0": v0}).values()
    (expected,) = run_onnxruntime(model, {"v0": v0})
    np.testing.assert_allclose(actual, expected)


def test_a_state_that_grows_needs_a_compile_time_trip_count():
    with pytest.raises(UnsupportedModelError, match="changes shape between iterations"):
        import_model(_growing_model("input"))


def test_loop_stopping_on_its_condition_matches_the_reference(compile_and_load):
    model = _loop_model(True)
    v0 = np.array([0.75, 0.5], np.float32)
    for trip in (20, 2):
        session = compile_and_load(model, name=f"loop{trip}",
                                   consts={"m": np.array(trip, np.int64)})
        (actual,) = session.run({"v0": v0}).values()
        (expected,) = run_onnxruntime(model, {"m": np.array(trip, np.int64), "v0": v0})
        np.testing.assert_allclose(actual, expected)
        np.testing.assert_allclose(actual, v0 * 2 ** min(trip, 4))   # stops after 4
