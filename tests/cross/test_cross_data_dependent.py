"""Data-dependent output sizes (NonZero, Unique, NonMaxSuppression) under QEMU: the emulation
driver carries each run's actual dims, for both renderers; checked against ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from cross_helpers import compile_cross, require_emulator, run_emulated
from reference import run_onnxruntime


def _model():
    io = helper.make_tensor_value_info
    nodes = [helper.make_node("NonZero", ["x"], ["nz"]),
             helper.make_node("Unique", ["x"], ["y", "first", "inverse", "counts"], sorted=1),
             helper.make_node("NonMaxSuppression", ["boxes", "scores", "limit"], ["kept"])]
    limit = helper.make_tensor("limit", TensorProto.INT64, [1], [2])
    graph = helper.make_graph(
        nodes, "dd", [io("x", TensorProto.FLOAT, [3, 4]), io("boxes", TensorProto.FLOAT, [1, 5, 4]),
                      io("scores", TensorProto.FLOAT, [1, 2, 5])],
        [io(n, TensorProto.INT64, None) for n in ("nz",)] + [io("y", TensorProto.FLOAT, None)]
        + [io(n, TensorProto.INT64, None) for n in ("first", "inverse", "counts", "kept")],
        [limit])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])


@pytest.mark.slow
@pytest.mark.parametrize("emit", ["c", "llvm"])
def test_bounded_outputs_under_emulation(tmp_path, emit):
    require_emulator("arm64")
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, (3, 4)).astype(np.float32)
    corners = rng.random((1, 5, 2)).astype(np.float32) * 3
    feed = {"x": x, "boxes": np.concatenate([corners, corners + 1.5], axis=2),
            "scores": rng.random((1, 2, 5)).astype(np.float32)}
    model = _model()
    got = run_emulated(compile_cross(model, "arm64", emit, tmp_path), feed)
    for (name, actual), expected in zip(got.items(), run_onnxruntime(model, feed)):
        assert actual.shape == expected.shape, name
        np.testing.assert_array_equal(actual, expected, err_msg=name)
