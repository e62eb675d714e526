"""What a newcomer meets first (issue 20, item 5): each rough edge of the command line and
the Python API that a first session runs into, reproduced on a tiny model built here."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import kiln
from kiln.cli import main
from kiln.runtime import load

from reference import assert_matches, run_onnxruntime


def _model(nodes, inputs, outputs, initializers=(), opset: int = 17):
    """A model from (name, elem_type, shape) inputs and (name, elem_type) outputs."""
    graph = helper.make_graph(
        nodes, "newcomer",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
        [numpy_helper.from_array(a, n) for n, a in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _conv_model():
    """Conv (a GEMM kernel) then Relu, on an input with a named batch dim."""
    weight = np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32)
    return _model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
                   helper.make_node("Relu", ["y"], ["z"])],
                  [("x", TensorProto.FLOAT, ["N", 3, 8, 12])], [("z", TensorProto.FLOAT)],
                  [("w", weight)])


# -- zero-size dims: empty outputs, never an internal error ------------------------------

ZERO_SIZE_CASES = {
    "conv_batch_0": (_conv_model, {"x": (0, 3, 8, 12)}),
    "matmul_m_0": (lambda: _model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                                  [("x", TensorProto.FLOAT, [0, 4])], [("y", TensorProto.FLOAT)],
                                  [("w", np.ones((4, 5), np.float32))]), {"x": (0, 4)}),
    "matmul_k_0": (lambda: _model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                                  [("x", TensorProto.FLOAT, [3, 0])], [("y", TensorProto.FLOAT)],
                                  [("w", np.ones((0, 5), np.float32))]), {"x": (3, 0)}),
    "reduce_max_of_empty": (lambda: _model(
        [helper.make_node("ReduceMax", ["x", "axes"], ["y"], keepdims=1)],
        [("x", TensorProto.FLOAT, [2, 0, 4])], [("y", TensorProto.FLOAT)],
        [("axes", np.array([1], np.int64))], opset=18), {"x": (2, 0, 4)}),
    "reduce_mean_of_empty": (lambda: _model(
        [helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=0)],
        [("x", TensorProto.FLOAT, [2, 0, 4])], [("y", TensorProto.FLOAT)],
        [("axes", np.array([1], np.int64))], opset=18), {"x": (2, 0, 4)}),
}


@pytest.mark.parametrize("case", sorted(ZERO_SIZE_CASES))
def test_zero_size_inputs_compile_and_match_onnxruntime(case, compile_and_load):
    build, shapes = ZERO_SIZE_CASES[case]
    model = build()
    feed = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    session = compile_and_load(model, shapes=shapes)
    outputs = session.run(feed)
    for (name, actual), expected in zip(outputs.items(), run_onnxruntime(model, feed)):
        assert_matches(actual, expected, what=f"{case}: {name}")


def test_zero_batch_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "conv.onnx"
    path.write_bytes(_conv_model().SerializeToString())
    for flag in (["--shape", "x=0x3x8x12"], ["--dim", "N=0"]):
        assert main(["compile", str(path), *flag, "-o", str(tmp_path / "conv.so")]) == 0
    assert "internal error" not in capsys.readouterr().err
    session = load(str(tmp_path / "conv.so"))
    assert session.run({"x": np.zeros((0, 3, 8, 12), np.float32)})["z"].shape == (0, 4, 8, 12)
    session.close()


# -- a closed pipe (`kiln targets | head -1`) ends the command quietly ---------------------

@pytest.mark.parametrize("command", [["targets"], ["kernels"]])
def test_closed_stdout_pipe_exits_quietly(command):
    process = subprocess.Popen([sys.executable, "-m", "kiln", *command],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()   # before the interpreter has started: every write fails
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait() == 128 + signal.SIGPIPE
    assert stderr == ""
