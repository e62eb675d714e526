"""The examples in examples/ against the fake model (the lead's CI runs them on real models)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runtime_helpers import run_cmd

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def model_dir(fake_so, tmp_path) -> Path:
    """model.so + model.h, as `kiln compile ... -o model.so` writes them."""
    shutil.copy(fake_so, tmp_path / "model.so")
    shutil.copy(fake_so.with_suffix(".h"), tmp_path / "model.h")
    return tmp_path


def test_c_example(cc, model_dir):
    shutil.copy(EXAMPLES / "c" / "main.c", model_dir)
    # the build command given in main.c's comment
    run_cmd(["sh", "-c", f"{cc} -O2 -std=c11 -Wall -Wextra -Werror main.c -I. -L. -l:model.so "
                         "-Wl,-rpath,'$ORIGIN' -o main"], cwd=model_dir)
    out = run_cmd(["./main", "2"], cwd=model_dir).stdout
    assert "model fake: 2 input(s), 2 output(s)" in out
    # x[i] = ((7i % 17) - 8) / 8, k[i] = (7i % 17) - 8: y = 2x + k[i % 4], total = sum(k)
    assert "output y: float32 [2, 3] = -10 -1.25 7.5 -5 -7.25 -2.75" in out
    assert "output total: int64 [] = -7" in out


def test_c_example_reports_errors(cc, model_dir):
    shutil.copy(EXAMPLES / "c" / "main.c", model_dir)
    run_cmd(["sh", "-c", f"{cc} -O2 main.c -I. -L. -l:model.so -Wl,-rpath,'$ORIGIN' -o main"],
            cwd=model_dir)
    proc = subprocess.run(["./main", "5000"], cwd=model_dir, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "kiln_session_create failed: invalid argument: options.num_threads" in proc.stderr


def fake_onnx(path: Path) -> Path:
    """The fake model written in ONNX: y = 2x + reshape(cast(concat(k, k[:2]))), total = sum(k)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    const = helper.make_tensor
    nodes = [
        helper.make_node("Constant", [], ["two"], value=const("two", TensorProto.FLOAT, [], [2.0])),
        helper.make_node("Constant", [], ["s0"], value=const("s0", TensorProto.INT64, [1], [0])),
        helper.make_node("Constant", [], ["s2"], value=const("s2", TensorProto.INT64, [1], [2])),
        helper.make_node("Constant", [], ["shape"],
                         value=const("shape", TensorProto.INT64, [2], [2, 3])),
        helper.make_node("Slice", ["k", "s0", "s2"], ["k2"]),
        helper.make_node("Concat", ["k", "k2"], ["k6"], axis=0),
        helper.make_node("Cast", ["k6"], ["k6f"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["k6f", "shape"], ["kk"]),
        helper.make_node("Mul", ["x", "two"], ["x2"]),
        helper.make_node("Add", ["x2", "kk"], ["y"]),
        helper.make_node("ReduceSum", ["k"], ["total"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "fake",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("k", TensorProto.INT64, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("total", TensorProto.INT64, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_python_example(model_dir):
    pytest.importorskip("onnxruntime")
    onnx_path = fake_onnx(model_dir / "model.onnx")
    out = run_cmd([sys.executable, EXAMPLES / "python" / "run_model.py", "model.so",
                   "--onnx", onnx_path.name, "--threads", "2"], cwd=model_dir).stdout
    assert "output y: float32 (2, 3)" in out and "output total: int64 ()" in out
    assert "y: max abs difference" in out and "-> ok" in out and "total: equal" in out


def test_python_example_reports_load_errors(tmp_path):
    bad = tmp_path / "model.so"
    bad.write_text("not a library")
    proc = subprocess.run([sys.executable, EXAMPLES / "python" / "run_model.py", bad],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "not an ELF shared library" in proc.stderr
