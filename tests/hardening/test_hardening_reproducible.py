"""Reproducible builds: one model compiled twice with the same options, in separate processes
with different hash seeds, working folders and output folders, gives byte-identical artifacts
and headers (so they can be cached and verified)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from test_hardening_hostile_names import hostile_model
from kiln import zoo


def conv_model() -> onnx.ModelProto:
    """conv -> relu -> maxpool -> flatten -> gemm -> softmax, with weights."""
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "cw"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "cb"),
             numpy_helper.from_array(rng.standard_normal((10, 8 * 4 * 4)).astype(np.float32),
                                     "gw"),
             numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "gb")]
    nodes = [helper.make_node("Conv", ["x", "cw", "cb"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "gw", "gb"], ["g"], transB=1),
             helper.make_node("Softmax", ["g"], ["y"])]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 8, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _build(model_path: Path, out_dir: Path, seed: int, *extra: str) -> tuple[str, str]:
    out_dir.mkdir()
    env = dict(os.environ, PYTHONHASHSEED=str(seed))
    result = subprocess.run([sys.executable, "-m", "kiln", "compile", str(model_path), "-o",
                             str(out_dir / "model.so"), *extra], cwd=out_dir, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    digest = [hashlib.sha256((out_dir / name).read_bytes()).hexdigest()
              for name in ("model.so", "model.h")]
    return digest[0], digest[1]


def _twice(model: onnx.ModelProto, tmp_path: Path, *extra: str) -> None:
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    first = _build(path, tmp_path / "first", 1, *extra)
    second = _build(path, tmp_path / "second_with_a_longer_path", 2, *extra)
    assert first == second


@pytest.mark.parametrize("make", [conv_model, hostile_model], ids=["conv", "hostile_names"])
def test_same_model_twice_gives_identical_bytes(make, tmp_path):
    _twice(make(), tmp_path)


@pytest.mark.slow
def test_squeezenet_twice_gives_identical_bytes(tmp_path):
    _twice(zoo.load("squeezenet1_1"), tmp_path, "--dim", "batch=1")
