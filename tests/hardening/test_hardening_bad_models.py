"""Every model in the bad-model corpus ends in one KilnError that says what is wrong (and, for
a node, names it, its op and opset); the command line exits 2 with no traceback. Dims of zero
compile and match ONNX Runtime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

import kiln
from kiln.cli import main
from kiln.compiler.errors import KilnError, ModelLoadError, UnsupportedModelError
from kiln.runtime import load

from bad_models import BAD_MODELS, BadModel, external_data_model
from reference import assert_matches, run_onnxruntime

IDS = [bad.name for bad in BAD_MODELS]


@pytest.mark.parametrize("bad", BAD_MODELS, ids=IDS)
def test_bad_model_raises_one_clear_kiln_error(bad: BadModel, tmp_path):
    path = bad.make(tmp_path)
    with pytest.raises(KilnError) as info:
        kiln.compile(str(path), output=str(tmp_path / "m.so"), dims=bad.dims)
    message = str(info.value)
    for word in bad.expect:
        assert word.lower() in message.lower(), f"{word!r} not in: {message}"
    assert "Traceback" not in message
    if isinstance(info.value, UnsupportedModelError):
        for problem in info.value.problems:   # node, op and opset, and the reason
            assert problem.node and problem.op_type and problem.reason
            assert "opset" in str(problem)
    assert not (tmp_path / "m.so").exists()


@pytest.mark.parametrize("bad", BAD_MODELS, ids=IDS)
def test_bad_model_on_the_command_line_exits_2(bad: BadModel, tmp_path, capsys):
    path = bad.make(tmp_path)
    argv = ["compile", str(path), "-o", str(tmp_path / "m.so")]
    argv += [f"--dim={k}={v}" for k, v in bad.dims.items()]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("kiln: error: ") and "Traceback" not in err
    assert "internal error" not in err


def test_command_line_process_has_no_traceback_and_debug_shows_it(tmp_path):
    path = next(b for b in BAD_MODELS if b.name == "cycle").make(tmp_path)
    command = [sys.executable, "-m", "kiln", "compile", str(path), "-o", str(tmp_path / "m.so")]
    plain = subprocess.run(command, capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert "add_a" in plain.stderr and "topologically sorted" in plain.stderr
    debug = subprocess.run(command[:3] + ["--debug"] + command[3:], capture_output=True,
                           text=True)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_external_data_of_bytes_is_refused(tmp_path):
    bad = next(b for b in BAD_MODELS if b.name == "external_data_missing")
    data = bad.make(tmp_path).read_bytes()
    with pytest.raises(ModelLoadError, match="bytes or a ModelProto"):
        kiln.compile(data, output=str(tmp_path / "m.so"))


def test_external_data_inside_the_folder_still_loads(tmp_path):
    def beside(model_dir: Path) -> None:
        (model_dir / "sub").mkdir()
        (model_dir / "sub" / "w.bin").write_bytes(np.arange(6, dtype=np.float32).tobytes())

    path = external_data_model("sub/../sub/w.bin", beside)(tmp_path)
    session = load(kiln.compile(str(path), output=str(tmp_path / "m.so")), threads=1)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(session.run({"x": x})["y"],
                                  x + np.arange(6, dtype=np.float32).reshape(2, 3))
    session.close()


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


ZERO_DIM_CASES = {
    "relu": ([helper.make_node("Relu", ["x"], ["y"])], [0, 3]),
    "add": ([helper.make_node("Add", ["x", "x"], ["y"])], [2, 0]),
    "softmax": ([helper.make_node("Softmax", ["x"], ["y"], axis=1)], [0, 4]),
    "reduce_sum": ([helper.make_node("ReduceSum", ["x"], ["y"], keepdims=1)], [0, 4]),
    "reduce_max_over_empty": ([helper.make_node("ReduceMax", ["x"], ["y"], keepdims=1)], [3, 0]),
    "transpose": ([helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0])], [0, 4]),
    "matmul_k_0": ([helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0]),
                    helper.make_node("MatMul", ["x", "xt"], ["y"])], [3, 0]),
    "maxpool": ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2])],
                [0, 1, 4, 4]),
    "concat": ([helper.make_node("Concat", ["x", "x"], ["y"], axis=0)], [0, 2]),
}


@pytest.mark.parametrize("case", sorted(ZERO_DIM_CASES))
def test_dims_of_zero_compile_and_match(case, compile_and_load):
    nodes, shape = ZERO_DIM_CASES[case]
    graph = helper.make_graph(nodes, "zero", [_vi("x", shape)], [_vi("y", None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    expected = run_onnxruntime(model, {"x": x})[0]
    assert_matches(compile_and_load(model).run({"x": x})["y"], expected)
