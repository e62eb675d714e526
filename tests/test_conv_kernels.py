"""The vector conv kernels (band, im2col chunks, depthwise) against ONNX Runtime.

Single Conv nodes with constant weights, shaped to reach each kernel's edge cases: output
channels that leave a partial register panel, depths split into K chunks, ragged position
blocks, asymmetric pads, dilation, groups, strides, batch > 1 and fused epilogues.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from reference import assert_matches, run_onnxruntime

# name: (N, C, H, W), (OC, KH, KW), strides, pads (t, l, b, r), dilations, group
CASES = {
    "s1_tail_panel": ((1, 16, 10, 13), (20, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "s1_k_chunks": ((1, 40, 9, 9), (14, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "s1_row_chunks": ((1, 4, 30, 30), (8, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "s1_no_pad": ((1, 5, 9, 11), (6, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "s1_dilated": ((1, 6, 12, 12), (8, 3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 1),
    "s1_asym_pad": ((1, 3, 8, 10), (5, 2, 3), (1, 1), (0, 2, 1, 0), (1, 1), 1),
    "pointwise": ((1, 24, 11, 7), (30, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "pointwise_s2": ((1, 12, 9, 9), (10, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1),
    "s2_tail_panel": ((1, 8, 15, 17), (13, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),
    "s2_k_chunks_asym": ((1, 32, 12, 11), (7, 3, 3), (2, 2), (0, 1, 1, 0), (1, 1), 1),
    "s2_position_chunks": ((1, 3, 40, 40), (6, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),
    "first_conv_7x7": ((1, 3, 30, 30), (16, 7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1),
    "s21_mixed": ((1, 4, 9, 10), (6, 3, 3), (2, 1), (1, 1, 1, 1), (1, 1), 1),
    "s2_dilated": ((1, 4, 13, 13), (5, 3, 3), (2, 2), (2, 2, 2, 2), (2, 2), 1),
    "grouped_s1": ((1, 8, 9, 9), (12, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2),
    "grouped_s2": ((1, 8, 9, 9), (12, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 2),
    "batch2_s1": ((2, 6, 7, 7), (9, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "batch2_s2": ((2, 6, 7, 7), (9, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),
    "depthwise_s1": ((1, 12, 13, 11), (12, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 12),
    "depthwise_s2": ((1, 16, 13, 11), (16, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 16),
    "depthwise_5x5_asym": ((2, 5, 10, 21), (5, 5, 5), (1, 1), (2, 1, 2, 3), (1, 1), 5),
    "depthwise_s2_wide": ((1, 3, 8, 40), (3, 3, 3), (2, 2), (0, 1, 1, 1), (1, 1), 3),
}


def conv_model(x_shape, w_shape, strides, pads, dilations, group, residual: bool):
    """Conv (+ bias) -> [Add residual input] -> Relu, constant weights."""
    rng = np.random.default_rng(7)
    oc, kh, kw = w_shape
    w = rng.standard_normal((oc, x_shape[1] // group, kh, kw)).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[kh, kw],
                              strides=list(strides), pads=list(pads),
                              dilations=list(dilations), group=group)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))]
    last = "y"
    if residual:
        nodes.append(helper.make_node("Add", ["y", "r"], ["s"]))
        out_shape = _output_shape(x_shape, w_shape, strides, pads, dilations)
        inputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, list(out_shape)))
        last = "s"
    nodes.append(helper.make_node("Relu", [last], ["z"]))
    graph = helper.make_graph(nodes, "conv", inputs,
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _output_shape(x_shape, w_shape, strides, pads, dilations):
    n, _, h, w = x_shape
    oc, kh, kw = w_shape
    oh = (h + pads[0] + pads[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (w + pads[1] + pads[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    return (n, oc, oh, ow)


@pytest.mark.parametrize("name", sorted(CASES))
def test_conv_kernel(name, compile_and_load):
    x_shape, w_shape, strides, pads, dilations, group = CASES[name]
    model = conv_model(x_shape, w_shape, strides, pads, dilations, group, residual=False)
    x = np.random.default_rng(1).standard_normal(x_shape).astype(np.float32)
    expected = run_onnxruntime(model, {"x": x})[0]
    session = compile_and_load(model, name=name)
    assert_matches(session.run({"x": x})["z"], expected, what=name)


@pytest.mark.parametrize("name", ["s1_k_chunks", "s2_k_chunks_asym", "depthwise_s2"])
def test_conv_kernel_residual_two_threads(name, compile_and_load):
    x_shape, w_shape, strides, pads, dilations, group = CASES[name]
    model = conv_model(x_shape, w_shape, strides, pads, dilations, group, residual=True)
    rng = np.random.default_rng(2)
    feed = {"x": rng.standard_normal(x_shape).astype(np.float32),
            "r": rng.standard_normal(_output_shape(x_shape, w_shape, strides, pads,
                                                   dilations)).astype(np.float32)}
    expected = run_onnxruntime(model, feed)[0]
    session = compile_and_load(model, name=name, threads=2)
    assert_matches(session.run(feed)["z"], expected, what=name)
