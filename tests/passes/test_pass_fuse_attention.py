"""fuse_attention: multi-head attention as exporters write it becomes one `attention` op, the
compiled model (vector microkernels, tails, scalar fallback) matches ONNX Runtime, and near
misses are left alone. Also checks the row softmax / layer norm kernels on odd lengths."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from reference import assert_matches, run_onnxruntime


def _attention_model(batch: int, heads: int, sq: int, sk: int, d: int, mask_shape=None,
                     scale_op: str = "Mul", merge: bool = True, kv_perm=(0, 2, 3, 1),
                     leak_scores: bool = False) -> onnx.ModelProto:
    """q [b, sq, h*d], k/v [b, sk, h*d] (-> reshape, transpose) -> attention -> [b, sq, h*d]."""
    n = helper.make_node
    width = heads * d
    nodes = [
        n("Reshape", ["q", "q_shape"], ["q4"]), n("Transpose", ["q4"], ["qh"], perm=[0, 2, 1, 3]),
        n("Reshape", ["k", "kv_shape"], ["k4"]), n("Transpose", ["k4"], ["kt"], perm=kv_perm),
        n("Reshape", ["v", "kv_shape"], ["v4"]), n("Transpose", ["v4"], ["vh"], perm=[0, 2, 1, 3]),
        n("MatMul", ["qh", "kt"], ["s"]),
        n(scale_op, ["s", "scale"], ["ss"]),
    ]
    scores = "ss"
    inputs = [helper.make_tensor_value_info("q", onnx.TensorProto.FLOAT, [batch, sq, width]),
              helper.make_tensor_value_info("k", onnx.TensorProto.FLOAT, [batch, sk, width]),
              helper.make_tensor_value_info("v", onnx.TensorProto.FLOAT, [batch, sk, width])]
    if mask_shape is not None:
        nodes.append(n("Add", ["ss", "mask"], ["sm"]))
        inputs.append(helper.make_tensor_value_info("mask", onnx.TensorProto.FLOAT, mask_shape))
        scores = "sm"
    nodes += [n("Softmax", [scores], ["p"], axis=-1), n("MatMul", ["p", "vh"], ["o"]),
              n("Transpose", ["o"], ["om" if merge else "y"], perm=[0, 2, 1, 3])]
    if merge:
        nodes.append(n("Reshape", ["om", "out_shape"], ["y"]))
    scale = 1 / np.sqrt(d) if scale_op == "Mul" else np.sqrt(d)
    consts = {"q_shape": np.array([batch, sq, heads, d], np.int64),
              "kv_shape": np.array([batch, sk, heads, d], np.int64),
              "out_shape": np.array([batch, sq, width], np.int64),
              "scale": np.array(scale, np.float32)}
    outputs = [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)]
    if leak_scores:
        outputs.append(helper.make_tensor_value_info("ss", onnx.TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "attention", inputs, outputs,
                              [numpy_helper.from_array(v, k) for k, v in consts.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _feed(model, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feed = {}
    for value in model.graph.input:
        shape = [dim.dim_value for dim in value.type.tensor_type.shape.dim]
        data = rng.standard_normal(shape).astype(np.float32)
        if value.name == "mask":   # BERT-style: 0 where attended, a large negative elsewhere
            data = np.where(rng.random(shape) < 0.8, 0.0, -10000.0).astype(np.float32)
        feed[value.name] = data
    return feed


def _ops_after_passes(model) -> dict[str, int]:
    from kiln.frontends.onnx import import_model
    from kiln.passes.manager import run_passes

    return run_passes(import_model(model), verify_each=True).op_histogram()


CASES = {
    # name: (batch, heads, sq, sk, d, mask shape, scale op)
    "bert": (1, 4, 128, 128, 64, [1, 1, 1, 128], "Mul"),
    "square-mask": (1, 2, 40, 40, 32, [1, 1, 40, 40], "Div"),
    "odd-seq": (2, 3, 13, 13, 16, [2, 1, 1, 13], "Mul"),
    "cross": (1, 2, 7, 21, 8, [1, 2, 7, 21], "Mul"),
    "no-mask": (1, 2, 9, 24, 24, None, "Div"),
    "scalar-head": (1, 2, 10, 10, 12, [1, 1, 1, 10], "Mul"),   # head_dim % 8: plain loops
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_attention_fuses_and_matches(case, compile_and_load):
    batch, heads, sq, sk, d, mask_shape, scale_op = CASES[case]
    model = _attention_model(batch, heads, sq, sk, d, mask_shape, scale_op)
    ops = _ops_after_passes(model)
    assert ops.get("attention") == 1 and not {"softmax", "transpose", "matmul"} & set(ops), ops
    feed = _feed(model)
    (expected,) = run_onnxruntime(model, feed)
    for threads in (1, 2):
        session = compile_and_load(model, name=f"{case}{threads}", threads=threads)
        (actual,) = session.run(feed).values()
        assert_matches(actual, expected, what=f"{case} x{threads}")


def test_attention_without_the_merge_reshape(compile_and_load):
    """Ending at the transpose ([b, s, h, d]) fuses too; the output keeps that shape."""
    model = _attention_model(1, 2, 12, 12, 16, [1, 1, 1, 12], merge=False)
    assert _ops_after_passes(model).get("attention") == 1
    feed = _feed(model, seed=3)
    (expected,) = run_onnxruntime(model, feed)
    (actual,) = compile_and_load(model).run(feed).values()
    assert actual.shape == (1, 12, 2, 16)
    assert_matches(actual, expected)


@pytest.mark.parametrize("variant", ["scores-read-twice", "k-not-transposed-for-qk"])
def test_near_misses_are_left_alone(variant):
    if variant == "scores-read-twice":
        model = _attention_model(1, 2, 8, 8, 8, [1, 1, 1, 8], leak_scores=True)
    else:
        model = _attention_model(1, 2, 8, 8, 8, [1, 1, 1, 8], kv_perm=(0, 2, 1, 3))
    ops = _ops_after_passes(model)   # (the second one computes Q K with d = seq: valid)
    assert "attention" not in ops and ops.get("softmax") == 1, ops


@pytest.mark.parametrize("length", [1, 7, 8, 13, 64, 100])
def test_row_softmax_and_layer_norm_odd_lengths(length, compile_and_load):
    """The lane-split row kernels: lengths below, at and off the vector width, with -inf."""
    n = helper.make_node
    nodes = [n("Softmax", ["x"], ["s"], axis=-1), n("LogSoftmax", ["x"], ["ls"], axis=-1),
             n("LayerNormalization", ["x", "gamma", "beta"], ["ln"], axis=-1, epsilon=1e-5)]
    rng = np.random.default_rng(length)
    consts = {"gamma": rng.standard_normal(length).astype(np.float32),
              "beta": rng.standard_normal(length).astype(np.float32)}
    graph = helper.make_graph(
        nodes, "rows", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3, length])],
        [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in
         ("s", "ls", "ln")], [numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = (rng.standard_normal((3, length)) * 30).astype(np.float32)
    x[1, 0] = -np.inf if length > 1 else x[1, 0]
    expected = run_onnxruntime(model, {"x": x})
    actual = list(compile_and_load(model).run({"x": x}).values())
    for got, want, what in zip(actual, expected, ("softmax", "log_softmax", "layer_norm")):
        assert_matches(got, want, what=f"{what} length {length}")
