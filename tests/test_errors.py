"""A user's mistakes end in one clear KilnError (exit status 2 on the command line), never
a crash or a traceback."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import kiln
from kiln.compiler.errors import (InputError, KilnError, ModelLoadError, UnpinnedDimError,
                                  UnsupportedModelError)


def _model(nodes, inputs, outputs, opset=17, domains=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=imports)


def _relu_model(dims=("batch", 4)):
    return _model([helper.make_node("Relu", ["x"], ["y"], name="relu0")],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(dims))])


def _unknown_ops(count):
    names = ["FrobnicateA", "FrobnicateB", "FrobnicateC"][:count]
    nodes, prev = [], "x"
    for i, op in enumerate(names):
        nodes.append(helper.make_node(op, [prev], [f"t{i}"], name=f"weird{i}",
                                      domain="com.example"))
        prev = f"t{i}"
    nodes.append(helper.make_node("Relu", [prev], ["y"]))
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
                  domains=["com.example"])


def test_truncated_model_file(tmp_path):
    path = tmp_path / "truncated.onnx"
    data = _relu_model().SerializeToString()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated|not a readable|not an ONNX|not valid"):
        kiln.compile(str(path), output=str(tmp_path / "m.so"), dims={"batch": 1})


def test_not_an_onnx_file(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n" * 10)
    with pytest.raises(ModelLoadError):
        kiln.compile(str(path), output=str(tmp_path / "m.so"))


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        kiln.compile(str(tmp_path / "nope.onnx"), output=str(tmp_path / "m.so"))


def test_one_unknown_op(tmp_path):
    with pytest.raises(UnsupportedModelError) as info:
        kiln.compile(_unknown_ops(1), output=str(tmp_path / "m.so"))
    message = str(info.value)
    assert "weird0" in message and "FrobnicateA" in message and "com.example" in message
    assert "opset 1" in message


def test_an_output_declared_with_another_dtype_is_refused(tmp_path):
    # ONNX Runtime refuses this model too; Kiln used to return int32 data for a float output
    model = _model([helper.make_node("Relu", ["x"], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.INT32, [4])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    with pytest.raises(UnsupportedModelError, match="declared FLOAT but the graph computes INT32"):
        kiln.compile(model, output=str(tmp_path / "m.so"))


def test_an_empty_strides_attribute_is_refused(tmp_path):
    pool = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2])
    pool.attribute.append(helper.make_attribute("strides", [], attr_type=onnx.AttributeProto.INTS))
    model = _model([pool], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(UnsupportedModelError, match=r"strides \[\] .* do not fit"):
        kiln.compile(model, output=str(tmp_path / "m.so"))


def test_three_unknown_ops_in_one_message(tmp_path):
    with pytest.raises(UnsupportedModelError) as info:
        kiln.compile(_unknown_ops(3), output=str(tmp_path / "m.so"))
    assert len(info.value.problems) == 3
    message = str(info.value)
    for op in ("FrobnicateA", "FrobnicateB", "FrobnicateC"):
        assert op in message


def test_unpinned_dim_names_input_and_dim(tmp_path):
    with pytest.raises(UnpinnedDimError) as info:
        kiln.compile(_relu_model(), output=str(tmp_path / "m.so"))
    assert "'x'" in str(info.value) and "batch" in str(info.value)
    assert "--dim batch=" in str(info.value)


def test_missing_output_path():
    with pytest.raises(KilnError, match="output"):
        kiln.compile(_relu_model(), output="", dims={"batch": 1})


def test_output_folder_missing(tmp_path):
    with pytest.raises(KilnError, match="does not exist"):
        kiln.compile(_relu_model(), output=str(tmp_path / "no" / "m.so"), dims={"batch": 1})


def test_unknown_target(tmp_path):
    with pytest.raises(KilnError, match="target"):
        kiln.compile(_relu_model(), target="pdp11", output=str(tmp_path / "m.so"),
                     dims={"batch": 1})


@pytest.fixture
def relu_session(compile_and_load):
    return compile_and_load(_relu_model(), dims={"batch": 2})


def test_run_wrong_dtype(relu_session):
    with pytest.raises(InputError, match="float32"):
        relu_session.run({"x": np.zeros((2, 4), np.float64)})


def test_run_wrong_shape(relu_session):
    with pytest.raises(InputError, match=r"\(2, 4\)|2, 4"):
        relu_session.run({"x": np.zeros((3, 4), np.float32)})


def test_run_missing_input(relu_session):
    with pytest.raises(InputError, match="'x'|x"):
        relu_session.run({"y": np.zeros((2, 4), np.float32)})


def test_run_correct_after_errors(relu_session):
    x = np.array([[-1, 2, -3, 4], [5, -6, 7, -8]], np.float32)
    np.testing.assert_array_equal(relu_session.run({"x": x})["y"], np.maximum(x, 0))


def _kiln(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kiln", *args], capture_output=True,
                          text=True, cwd=cwd)


def test_cli_unsupported_model_exits_2_without_traceback(tmp_path):
    path = tmp_path / "weird.onnx"
    onnx.save(_unknown_ops(3), str(path))
    result = _kiln("compile", str(path), "-o", str(tmp_path / "m.so"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("Frobnicate") == 3


def test_cli_bad_dim_flag(tmp_path):
    path = tmp_path / "relu.onnx"
    onnx.save(_relu_model(), str(path))
    result = _kiln("compile", str(path), "-o", str(tmp_path / "m.so"), "--dim", "batch")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--dim" in result.stderr


def test_cli_missing_output(tmp_path):
    path = tmp_path / "relu.onnx"
    onnx.save(_relu_model(), str(path))
    result = _kiln("compile", str(path), "--dim", "batch=1")
    assert result.returncode == 2 and "-o" in result.stderr


def test_cli_compile_and_run(tmp_path):
    path = tmp_path / "relu.onnx"
    onnx.save(_relu_model(), str(path))
    out = tmp_path / "relu.so"
    result = _kiln("compile", str(path), "-o", str(out), "--dim", "batch=3")
    assert result.returncode == 0, result.stderr
    assert out.exists() and (tmp_path / "relu.h").exists()
    x = np.arange(12, dtype=np.float32).reshape(3, 4) - 6
    np.save(tmp_path / "x.npy", x)
    result = _kiln("run", str(out), "--input", f"x={tmp_path / 'x.npy'}", "--output-dir",
                   str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "y: float32[3, 4]" in result.stdout and "latency" in result.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), np.maximum(x, 0))


def test_cli_inspect_lists_unsupported(tmp_path):
    path = tmp_path / "weird.onnx"
    onnx.save(_unknown_ops(2), str(path))
    result = _kiln("inspect", str(path))
    assert result.returncode == 0
    assert "FrobnicateA" in result.stdout and "unsupported: 2" in result.stdout
