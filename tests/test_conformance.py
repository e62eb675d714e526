"""The ONNX backend node tests (onnx 1.22.0 wheel) compiled and run against their stored
outputs: no wrong answer, no crash, and no fewer passes than the committed floor.

The full suite runs here (about 7 minutes on 2 idle cores, far longer on a loaded machine);
`python -m kiln.conformance --report docs/conformance.md` runs the same suite and writes the
per-op report.
"""

from __future__ import annotations

import zipfile

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from kiln.conformance.cases import NodeTest, compare, discover, primary_op
from kiln.conformance.data import ConformanceDataError, ensure_test_data, find_test_data
from kiln.conformance.report import render, top_reasons
from kiln.conformance.runner import counts, run_tests

#: Passing node tests must not drop below this (raise it as ops land).
PASS_FLOOR = 1650


@pytest.fixture(scope="module")
def node_root():
    try:
        return ensure_test_data() / "node"
    except ConformanceDataError as exc:
        pytest.skip(f"the onnx 1.22.0 test data cannot be fetched here: {exc}")


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


@pytest.mark.slow
def test_node_suite_has_no_wrong_answer_or_crash(node_root):
    tests = discover(node_root)
    assert len(tests) == 1765
    outcomes = run_tests(tests, jobs=2)
    total = counts(outcomes)
    bad = [f"{o.name} ({o.status}): {o.reason[:200]}" for o in outcomes
           if o.status in ("wrong", "crash")]
    assert not bad, "\n".join(bad)
    assert total["pass"] >= PASS_FLOOR, (total, top_reasons(outcomes))
