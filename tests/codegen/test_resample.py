"""Resize stays one `resample` op with its own kernel (no gather tables and a full-size
intermediate per axis), and matches ONNX Runtime: computed, folded at compile time, and for
integer tensors (nearest)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kiln.frontends.onnx import import_model
from kiln.passes.manager import run_passes
from reference import assert_matches, run_onnxruntime

_RNG = np.random.default_rng(3)


def _resize_model(mode: str, dtype: int, scales, constant_input: bool = False, **attrs
                  ) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(np.array(scales, np.float32), "scales")]
    inputs = ["c" if constant_input else "x", "", "scales"]
    nodes = [helper.make_node("Resize", inputs, ["r"], mode=mode, **attrs),
             helper.make_node("Add", ["r", "x"] if constant_input else ["r", "r"], ["y"])]
    x_shape = [1, 3, 5, 7]
    out_shape = [int(d * s) for d, s in zip(x_shape, scales)]
    if constant_input:
        inits.append(numpy_helper.from_array(_RNG.standard_normal(x_shape).astype(np.float32),
                                             "c"))
        x_shape = out_shape
    graph = helper.make_graph(nodes, "resize", [helper.make_tensor_value_info("x", dtype,
                                                                              x_shape)],
                              [helper.make_tensor_value_info("y", dtype, out_shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


@pytest.mark.parametrize("mode,attrs", [
    ("linear", {}), ("cubic", {"exclude_outside": 1}),
    ("linear", {"antialias": 1}), ("nearest", {"nearest_mode": "ceil"})])
def test_resize_is_one_kernel_and_matches_onnxruntime(mode, attrs, compile_and_load):
    scales = [1, 1, 0.6, 2] if attrs.get("antialias") else [1, 1, 2, 1.5]
    model = _resize_model(mode, TensorProto.FLOAT, scales, **attrs)
    graph = run_passes(import_model(model))
    ops = [n.op for n in graph.nodes]
    assert ops.count("resample") == 1 and "gather" not in ops, ops
    feed = {"x": _RNG.standard_normal((1, 3, 5, 7)).astype(np.float32)}
    (expected,) = run_onnxruntime(model, feed)
    (actual,) = compile_and_load(model, threads=2).run(feed).values()
    assert_matches(actual, expected)


def test_resize_of_a_constant_is_folded(compile_and_load):
    model = _resize_model("linear", TensorProto.FLOAT, [1, 1, 2, 2], constant_input=True)
    assert "resample" not in [n.op for n in run_passes(import_model(model)).nodes]
    feed = {"x": _RNG.standard_normal((1, 3, 10, 14)).astype(np.float32)}
    (expected,) = run_onnxruntime(model, feed)
    (actual,) = compile_and_load(model).run(feed).values()
    assert_matches(actual, expected)


def test_nearest_resize_of_integers_is_exact(compile_and_load):
    model = _resize_model("nearest", TensorProto.UINT8, [1, 1, 3, 0.5])
    feed = {"x": _RNG.integers(0, 100, (1, 3, 5, 7)).astype(np.uint8)}
    (expected,) = run_onnxruntime(model, feed)
    (actual,) = compile_and_load(model).run(feed).values()
    np.testing.assert_array_equal(actual, expected)
