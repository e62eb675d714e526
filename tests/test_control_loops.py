"""Scan and Loop compiled as loops (compiler/ops/loops.py): the body imported once, its
kernels repeated by the run function. Against ONNX Runtime: a Loop whose trip count is fed
at run time, a Loop whose condition (computed each iteration) stops it early with its scan
output reported at the length it reached, and a long Scan whose artifact is the size of a
short one's."""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from reference import assert_matches, run_onnxruntime

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _model(nodes, inputs, outputs, initializers=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _loop_model(trip: str, with_cond: bool) -> onnx.ModelProto:
    """v' = v * 0.5 + w + i; s' = s + sum(v'); stops (when with_cond) once sum(v') > limit.
    Scan output: v' of every iteration."""
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["fi"], to=F),
         helper.make_node("Mul", ["v", "half"], ["hv"]),
         helper.make_node("Add", ["hv", "w"], ["hw"]),
         helper.make_node("Add", ["hw", "fi"], ["v_out"]),
         helper.make_node("ReduceSum", ["v_out"], ["total"], keepdims=0),
         helper.make_node("Add", ["s", "total"], ["s_out"]),
         helper.make_node("Less", ["total", "limit"], ["c_out"])
         if with_cond else helper.make_node("Identity", ["c"], ["c_out"])],
        "body",
        [helper.make_tensor_value_info("i", I64, []),
         helper.make_tensor_value_info("c", B, []),
         helper.make_tensor_value_info("v", F, [5]),
         helper.make_tensor_value_info("s", F, [])],
        [helper.make_tensor_value_info("c_out", B, []),
         helper.make_tensor_value_info("v_out", F, [5]),
         helper.make_tensor_value_info("s_out", F, []),
         helper.make_tensor_value_info("vs", F, [5])],
        [numpy_helper.from_array(np.array(0.5, np.float32), "half")])
    body.node.append(helper.make_node("Identity", ["v_out"], ["vs"]))
    inputs = [helper.make_tensor_value_info("v0", F, [5]),
              helper.make_tensor_value_info("w", F, [5]),
              helper.make_tensor_value_info("limit", F, [])]
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "s0"),
             numpy_helper.from_array(np.array(True), "go")]
    if trip == "input":
        inputs.append(helper.make_tensor_value_info("m", I64, []))
        outputs = ["v_final", "s_final"]
        body.output.pop()   # a run-time trip count: no scan output (it would need a bound)
        body.node.pop()
    else:
        inits.append(numpy_helper.from_array(np.array(int(trip), np.int64), "m"))
        outputs = ["v_final", "s_final", "v_all"]
    node = helper.make_node("Loop", ["m", "go", "v0", "s0"], outputs, body=body)
    return _model([node], inputs, [helper.make_tensor_value_info(o, F, None) for o in outputs],
                  inits)


def _check(session, model, feed) -> None:
    expected = run_onnxruntime(model, feed)
    got = session.run(feed)
    assert list(got) == [o.name for o in model.graph.output]
    for (name, actual), want in zip(got.items(), expected):
        assert_matches(actual, want, what=name)


def test_loop_trip_count_fed_at_run_time(compile_and_load):
    """One artifact runs the body 0, 3 and 40 times, as the fed trip count says."""
    model = _loop_model("input", with_cond=False)
    session = compile_and_load(model)
    rng = np.random.default_rng(0)
    for trips in (3, 40, 0):
        feed = {"v0": rng.standard_normal(5).astype(np.float32),
                "w": rng.standard_normal(5).astype(np.float32),
                "limit": np.array(0.0, np.float32), "m": np.array(trips, np.int64)}
        _check(session, model, feed)


def test_loop_condition_stops_early_with_scan_output(compile_and_load):
    """A condition computed by the body stops the loop within its trip count (the bound);
    the scan output comes back with one row per iteration run."""
    model = _loop_model("30", with_cond=True)
    session = compile_and_load(model)
    v0, w = np.zeros(5, np.float32), np.full(5, 0.25, np.float32)
    rows = set()
    for limit in (4.0, 40.0, 1e9):
        feed = {"v0": v0, "w": w, "limit": np.array(limit, np.float32)}
        _check(session, model, feed)
        rows.add(session.run(feed)["v_all"].shape[0])
    assert len(rows) == 3 and max(rows) == 30   # stopped early twice, then ran to the end


def _scan_model(length: int) -> onnx.ModelProto:
    """h' = tanh(h W + x_t); y_t = h' * x_t: the sequence read backwards along axis 1, the
    outputs stacked backwards along axis 0."""
    body = helper.make_graph(
        [helper.make_node("MatMul", ["h", "wt"], ["hw"]),
         helper.make_node("Add", ["hw", "x"], ["pre"]),
         helper.make_node("Tanh", ["pre"], ["h_out"]),
         helper.make_node("Mul", ["h_out", "x"], ["y"])],
        "body",
        [helper.make_tensor_value_info("h", F, [2, 8]),
         helper.make_tensor_value_info("x", F, [2, 8])],
        [helper.make_tensor_value_info("h_out", F, [2, 8]),
         helper.make_tensor_value_info("y", F, [2, 8])],
        [numpy_helper.from_array(
            np.random.default_rng(1).standard_normal((8, 8)).astype(np.float32) * 0.3, "wt")])
    node = helper.make_node("Scan", ["h0", "xs"], ["h_final", "ys"], body=body,
                            num_scan_inputs=1, scan_input_axes=[1],
                            scan_input_directions=[1], scan_output_directions=[1])
    return _model([node], [helper.make_tensor_value_info("h0", F, [2, 8]),
                           helper.make_tensor_value_info("xs", F, [2, length, 8])],
                  [helper.make_tensor_value_info("h_final", F, None),
                   helper.make_tensor_value_info("ys", F, None)])


def test_long_scan_is_a_loop(compile_and_load, tmp_path):
    """A Scan over 150 steps matches ONNX Runtime, and its artifact is no bigger than the
    4-step one's plus 10% (the code does not depend on the length)."""
    rng = np.random.default_rng(2)
    sizes = {}
    for length in (4, 150):
        model = _scan_model(length)
        session = compile_and_load(model, name=f"scan{length}")
        feed = {"h0": rng.standard_normal((2, 8)).astype(np.float32),
                "xs": rng.standard_normal((2, length, 8)).astype(np.float32)}
        _check(session, model, feed)
        sizes[length] = os.path.getsize(tmp_path / f"scan{length}.so")
    assert sizes[150] <= sizes[4] * 1.1, sizes


def _if_model() -> onnx.ModelProto:
    """y = x @ W then tanh (then), or x * 3 - 1 (else), on a condition fed at run time."""
    w = numpy_helper.from_array(
        np.random.default_rng(3).standard_normal((4, 4)).astype(np.float32), "w")
    then_graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]),
         helper.make_node("Tanh", ["xw"], ["t"])], "then", [],
        [helper.make_tensor_value_info("t", F, [3, 4])], [w])
    else_graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "three"], ["x3"]),
         helper.make_node("Sub", ["x3", "one"], ["e"])], "else", [],
        [helper.make_tensor_value_info("e", F, [3, 4])],
        [numpy_helper.from_array(np.array(3, np.float32), "three"),
         numpy_helper.from_array(np.array(1, np.float32), "one")])
    node = helper.make_node("If", ["c"], ["y"], then_branch=then_graph, else_branch=else_graph)
    return _model([node], [helper.make_tensor_value_info("x", F, [3, 4]),
                           helper.make_tensor_value_info("c", B, [])],
                  [helper.make_tensor_value_info("y", F, None)])


def test_if_runs_the_branch_taken(compile_and_load):
    """One artifact takes each branch, as the condition fed says; the branches run under a C
    `if` (no `where` picks between two computed results)."""
    from kiln.frontends.onnx import import_model

    model = _if_model()
    histogram = import_model(model).op_histogram()
    assert histogram["if_begin"] == 1 and "where" not in histogram, histogram
    session = compile_and_load(model)
    x = np.random.default_rng(4).standard_normal((3, 4)).astype(np.float32)
    for taken in (True, False, True):
        _check(session, model, {"x": x, "c": np.array(taken)})
