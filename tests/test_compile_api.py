"""kiln.compile accepts what DESIGN.md promises: a path (with external data), bytes or a
ModelProto, dims pinned by symbol or by whole input shape."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import kiln
from kiln.compiler.errors import ShapeError, UnpinnedDimError
from kiln.runtime import load


def _affine_model():
    """y = relu(x @ W + b), W large enough to be stored as external data."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 32)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"],
                                                                          ["pre"]),
         helper.make_node("Relu", ["pre"], ["y"])],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 32])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model, w, b


def _check(path, w, b, batch):
    session = load(path, threads=1)
    x = np.random.default_rng(2).standard_normal((batch, 64)).astype(np.float32)
    np.testing.assert_allclose(session.run({"x": x})["y"], np.maximum(x @ w + b, 0),
                               rtol=1e-4, atol=1e-5)
    session.close()


def test_path_with_external_data(tmp_path):
    model, w, b = _affine_model()
    onnx.save(model, str(tmp_path / "affine.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="affine.data", size_threshold=0)
    assert (tmp_path / "affine.data").exists()
    out = kiln.compile(str(tmp_path / "affine.onnx"), output=str(tmp_path / "a.so"),
                       dims={"batch": 3})
    _check(out, w, b, 3)


def test_bytes_and_model_proto(tmp_path):
    model, w, b = _affine_model()
    _check(kiln.compile(model.SerializeToString(), output=str(tmp_path / "a.so"),
                        dims={"batch": 2}), w, b, 2)
    _check(kiln.compile(model, output=str(tmp_path / "b.so"), shapes={"x": (5, 64)}), w, b, 5)


def test_shape_must_agree_with_fixed_dims(tmp_path):
    model, _, _ = _affine_model()
    with pytest.raises(ShapeError, match="fixed to 64"):
        kiln.compile(model, output=str(tmp_path / "a.so"), shapes={"x": (1, 63)})


def test_shape_for_unknown_input(tmp_path):
    model, _, _ = _affine_model()
    with pytest.raises(UnpinnedDimError, match="names no input"):
        kiln.compile(model, output=str(tmp_path / "a.so"), shapes={"z": (1, 64)})


def test_header_is_written_beside_the_library(tmp_path):
    model, _, _ = _affine_model()
    kiln.compile(model, output=str(tmp_path / "affine.so"), dims={"batch": 1})
    header = (tmp_path / "affine.h").read_text()
    assert "kiln_session_run" in header and "[1, 64]" in header.replace("{", "[")
