"""The ONNX backend node tests (onnx 1.22.0 wheel) compiled and run against their stored
outputs: no wrong answer, no crash, and every test listed in conformance/passing.txt still
passes (a new pass is reported, so the list can be refreshed). Where a compile refuses because
an input must be known at compile time, the runner binds exactly the inputs the error names.

The full suite runs here (about 7 minutes on 2 idle cores, far longer on a loaded machine);
`python -m kiln.conformance --jobs 2 --report docs/conformance.md --write-passing
conformance/passing.txt` runs the same suite and writes the per-op report and the list.
Without the wheel's test data the suite skips, or fails in CI (KILN_CI=1).
"""

from __future__ import annotations

import warnings
import zipfile

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from kiln.compiler.errors import Problem, UnsupportedModelError
from kiln.conformance.cases import NodeTest, compare, discover, primary_op
from kiln.conformance.data import ConformanceDataError, ensure_test_data, find_test_data
from kiln.conformance.passing import (PASSING_FILE, compare_passing, read_passing,
                                      write_passing)
from kiln.conformance.report import pass_counts, render
from kiln.conformance.runner import Outcome, needed_consts, pass_kind, run_tests
from downloads import missing_download


@pytest.fixture(scope="module")
def node_root():
    try:
        return ensure_test_data() / "node"
    except ConformanceDataError as exc:
        missing_download(f"the onnx 1.22.0 test data cannot be fetched here: {exc}")


def test_compare_follows_the_issue_tolerances():
    x = np.array([1.0, np.nan, 3.0], np.float32)
    assert compare(x, x.copy()) is None                          # NaN equals NaN
    assert compare(x * (1 + 5e-4), x) is None                     # within rtol 1e-3
    assert compare(x * (1 + 5e-3), x) is not None
    assert compare(np.array([1, 2]), np.array([1, 3])) is not None   # ints exactly
    assert compare(x.astype(np.float64), x) is not None          # dtype must match
    assert compare(x[:2], x) is not None                          # shape must match


def _write_case(folder, model, inputs, outputs):
    folder.mkdir(parents=True)
    onnx.save(model, str(folder / "model.onnx"))
    data = folder / "test_data_set_0"
    data.mkdir()
    for kind, arrays in (("input", inputs), ("output", outputs)):
        for i, array in enumerate(arrays):
            (data / f"{kind}_{i}.pb").write_bytes(
                numpy_helper.from_array(array).SerializeToString())


def _tiny_case(tmp_path, name="test_relu_tiny", expected_shift=0.0):
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", 1, [2, 3])],
                              [helper.make_tensor_value_info("y", 1, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    _write_case(tmp_path / name, model, [x], [np.maximum(x, 0) + expected_shift])
    return NodeTest(name, tmp_path / name)


def test_runner_classifies_pass_wrong_unsupported_and_hang(tmp_path):
    good = _tiny_case(tmp_path)
    bad = _tiny_case(tmp_path, "test_relu_off", expected_shift=1.0)
    graph = helper.make_graph([helper.make_node("Bernoulli", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", 1, [2, 2])],
                              [helper.make_tensor_value_info("y", 1, [2, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    _write_case(tmp_path / "test_bernoulli_x", model, [np.eye(2, dtype=np.float32)],
                [np.eye(2, dtype=np.float32)])
    unsupported = NodeTest("test_bernoulli_x", tmp_path / "test_bernoulli_x")
    outcomes = run_tests([good, bad, unsupported], jobs=2)
    assert [o.status for o in outcomes] == ["pass", "wrong", "unsupported"], outcomes
    assert outcomes[0].op == "Relu" and "Bernoulli" in outcomes[2].reason
    # a test past its time limit is killed and counted as a crash; the next one still runs
    hung = run_tests([good, good], jobs=1, timeout=0.05)
    assert [o.status for o in hung] == ["crash", "crash"]
    assert "hang" in hung[0].reason
    assert render(outcomes, "cmd", 1.0, 2).count("| Relu | 2 | 1 | 0 | 1 | 0 |") == 1


def test_test_data_is_unpacked_from_a_wheel_and_found_offline(tmp_path):
    wheel = tmp_path / "onnx-1.22.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("onnx/backend/test/data/node/test_a/model.onnx", b"x")
        archive.writestr("onnx/backend/test/data/light/light_a.onnx", b"y")
        archive.writestr("onnx/backend/test/data/real/other.onnx", b"z")
        archive.writestr("onnx/__init__.py", b"")
    cache = tmp_path / "cache"
    assert find_test_data(cache) is None
    root = ensure_test_data(cache, wheel=wheel)
    assert (root / "node" / "test_a" / "model.onnx").read_bytes() == b"x"
    assert (root / "light" / "light_a.onnx").is_file()
    assert not (root / "real").exists()
    assert find_test_data(cache) == root
    assert ensure_test_data(cache) == root      # offline: no pip call the second time


def test_primary_op_of_expanded_tests_names_the_onnx_op():
    graph = helper.make_graph([helper.make_node("ReduceMax", ["x"], ["m"]),
                               helper.make_node("Sub", ["x", "m"], ["y"])], "g", [], [])
    model = helper.make_model(graph)
    assert primary_op(model, "test_softmax_axis_0_expanded") == "Softmax"
    assert primary_op(model, "test_layer_normalization_2d_axis0_expanded") == \
        "LayerNormalization"


def _case(tmp_path, name, nodes, inputs, outputs, opset=18):
    """A node test of `nodes` whose inputs are `inputs` (name -> array) and whose expected
    outputs are `outputs` (name -> array)."""
    def info(name, array):
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(array.dtype),
                                             list(array.shape))
    graph = helper.make_graph(nodes, "g", [info(k, v) for k, v in inputs.items()],
                              [info(k, v) for k, v in outputs.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    _write_case(tmp_path / name, model, list(inputs.values()), list(outputs.values()))
    return NodeTest(name, tmp_path / name)


def test_runner_binds_only_the_inputs_the_error_names(tmp_path):
    x = np.arange(6, dtype=np.float32)
    k = np.array([3], np.int64)          # small and integer, but nothing needs it constant
    ratio = np.array(0.5, np.float32)    # not needed: training_mode is false
    reshape = _case(tmp_path, "test_reshape_bind", [
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
        helper.make_node("Add", ["k", "k"], ["z"])],
        {"x": x, "shape": np.array([2, 3], np.int64), "k": k},
        {"y": x.reshape(2, 3), "z": k + k})
    dropout = _case(tmp_path, "test_dropout_bind", [
        helper.make_node("Dropout", ["x", "ratio", "training_mode"], ["y"])],
        {"x": x, "ratio": ratio, "training_mode": np.array(False)}, {"y": x})
    # Range names start, then limit, then delta: one compile each, until nothing is left
    range_ = _case(tmp_path, "test_range_bind", [
        helper.make_node("Range", ["start", "limit", "delta"], ["y"])],
        {"start": np.array(1, np.int64), "limit": np.array(7, np.int64),
         "delta": np.array(2, np.int64)}, {"y": np.array([1, 3, 5], np.int64)})
    outcomes = run_tests([reshape, dropout, range_, _tiny_case(tmp_path)], jobs=2)
    assert [o.status for o in outcomes] == ["pass"] * 4, outcomes
    assert [o.bound for o in outcomes] == [
        {"shape": "int64"}, {"training_mode": "bool"},
        {"start": "int64", "limit": "int64", "delta": "int64"}, {}]
    assert [o.runtime_inputs for o in outcomes] == [2, 2, 0, 1]
    assert [pass_kind(o) for o in outcomes] == ["bound-int", "bound-float",
                                                "no-run-time-input", "run-time"]
    assert "shape bound at compile time" in outcomes[0].reason
    text = render(outcomes, "cmd", 1.0, 2)
    assert "| 4 | 1 | 1 | 1 | 1 |" in text          # passes by what they exercised
    assert "| `test_range_bind` | pass | no-run-time-input | `start` (int64), `limit` " \
        "(int64), `delta` (int64) |" in text
    assert "test_relu_tiny` |" not in text            # nothing bound: not listed
    assert "rtol 0.001 (0.00195312 = 2^-9 for float16 outputs), atol 1e-07" in text
    assert "floor = 4 ulps" in text


def test_a_named_input_without_stored_data_is_not_bound(tmp_path):
    """The error names Reshape's shape input, but the stored data lacks it: nothing can be
    bound, so the test is unsupported with Kiln's own reason."""
    x = np.arange(6, dtype=np.float32)
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", 1, [6]),
                               helper.make_tensor_value_info("shape", 7, [2])],
                              [helper.make_tensor_value_info("y", 1, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    _write_case(tmp_path / "test_reshape_unbound", model, [x], [x.reshape(2, 3)])
    [outcome] = run_tests([NodeTest("test_reshape_unbound", tmp_path / "test_reshape_unbound")],
                          jobs=1)
    assert outcome.status == "unsupported" and outcome.bound == {}
    assert "Reshape's shape must be known at compile time" in outcome.reason


def test_needed_consts_reads_every_problem_in_order():
    error = UnsupportedModelError([Problem("a", "Reshape", "", 18, "r", "", ("s", "t")),
                                   Problem("b", "Tile", "", 18, "r", "", ("t", "u")),
                                   Problem("c", "Relu", "", 18, "r")])
    assert needed_consts(error) == ["s", "t", "u"]
    assert needed_consts(ValueError("x")) == []


def test_passing_list_round_trip_regressions_and_new_passes(tmp_path):
    outcomes = [Outcome("test_b", "B", "pass", runtime_inputs=1),
                Outcome("test_a", "A", "pass", bound={"axes": "int64"}, runtime_inputs=1),
                Outcome("test_c", "C", "unsupported", "no converter"),
                Outcome("test_d", "D", "wrong", "1/4 elements differ")]
    path = tmp_path / "passing.txt"
    assert write_passing(outcomes, path) == 2
    assert path.read_text() == "test_a\ntest_b\n"
    assert read_passing(path) == ["test_a", "test_b"]
    regressed, new = compare_passing(outcomes, ["test_a", "test_c", "test_d", "test_gone"])
    assert [o.name for o in regressed] == ["test_c", "test_d"]
    assert [o.name for o in new] == ["test_b"]
    assert pass_counts(outcomes) == {"run-time": 1, "bound-int": 1, "bound-float": 0,
                                     "no-run-time-input": 0}


def test_committed_passing_list_is_sorted_and_unique():
    names = read_passing(PASSING_FILE)
    assert names == sorted(set(names)) and len(names) > 1000
    assert all(name.startswith("test_") for name in names)


@pytest.mark.slow
def test_node_suite_has_no_wrong_answer_crash_or_regression(node_root):
    tests = discover(node_root)
    assert len(tests) == 1765
    listed = read_passing(PASSING_FILE)
    unknown = sorted(set(listed) - {t.name for t in tests})
    assert not unknown, f"conformance/passing.txt lists tests the suite lacks: {unknown}"
    outcomes = run_tests(tests, jobs=2)
    bad = [f"{o.name} ({o.status}): {o.reason[:200]}" for o in outcomes
           if o.status in ("wrong", "crash")]
    assert not bad, "\n".join(bad)
    regressed, new = compare_passing(outcomes, listed)
    assert not regressed, "listed in conformance/passing.txt but no longer passing:\n" + \
        "\n".join(f"{o.name} ({o.status}): {o.reason[:200]}" for o in regressed)
    if new:
        warnings.warn(f"{len(new)} node tests pass that conformance/passing.txt does not list "
                      f"(refresh it with python -m kiln.conformance --write-passing "
                      f"conformance/passing.txt): {', '.join(o.name for o in new)}")
