"""Which pooling kernel runs a pool is the registry's decision (codegen/kernels/pool.py),
recorded per group: NCHW loops, NHWC vectors with the taps unrolled, or NHWC loops where
the channels or the window do not suit vectors; each matches ONNX Runtime."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kiln.codegen.lower.gemm import microkernel_bits
from kiln.driver import compile_detailed
from kiln.runtime import load
from kiln.targets import get_target
from reference import assert_matches, run_onnxruntime

VECTOR_BITS = microkernel_bits(get_target("host"), None)
_RNG = np.random.default_rng(5)


def _weight(name: str, *shape: int) -> onnx.TensorProto:
    data = _RNG.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
    return numpy_helper.from_array(data.astype(np.float32), name)


def _model(channels: int, pool: str, window: int, between_convs: bool
           ) -> tuple[onnx.ModelProto, list[int]]:
    """A pool (stride 1, padded to keep the image), between two 1x1 convs when asked (so
    it runs channels-last on vector targets)."""
    size = 12
    pooled = helper.make_node(pool, ["a"], ["p"], name="pool", kernel_shape=[window] * 2,
                              pads=[window // 2] * 4)
    if between_convs:
        inits = [_weight("w1", channels, 8, 1, 1), _weight("w2", 8, channels, 1, 1)]
        nodes = [helper.make_node("Conv", ["x", "w1"], ["a"]), pooled,
                 helper.make_node("Conv", ["p", "w2"], ["y"])]
        shape, out_channels = [1, 8, size, size], 8
    else:
        inits, shape, out_channels = [], [1, channels, size, size], channels
        nodes = [helper.make_node("Identity", ["x"], ["a"]), pooled,
                 helper.make_node("Identity", ["p"], ["y"])]
    graph = helper.make_graph(
        nodes, "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                       [1, out_channels, size, size])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), shape


CASES = [
    ("MaxPool", 24, 3, False, "pool_nchw_loops"),
    ("AveragePool", 32, 3, True, "pool_nhwc_vector"),
    ("MaxPool", 32, 9, True, "pool_nhwc_loops"),     # 81 taps: too many to unroll
    ("AveragePool", 3, 3, True, "pool_nhwc_loops"),  # fewer channels than a vector
]


@pytest.mark.parametrize("pool, channels, window, between_convs, kernel", CASES)
def test_pool_kernel_is_chosen_once_and_matches_onnxruntime(
        pool, channels, window, between_convs, kernel, tmp_path):
    if between_convs and VECTOR_BITS < 256:
        kernel = "pool_nchw_loops"   # no vector kernels: the convs, and pools, stay NCHW
    model, shape = _model(channels, pool, window, between_convs)
    dumped = tmp_path / "schedule.jsonl"
    compile_detailed(model, output=tmp_path / "m.so", dump_schedule=dumped, verify=True)
    chosen = {line["group"]: line["kernel"] for line in map(json.loads,
                                                           dumped.read_text().splitlines())}
    assert chosen["pool"] == kernel, chosen
    feed = {"x": _RNG.standard_normal(shape).astype(np.float32)}
    (expected,) = run_onnxruntime(model, feed)
    (actual,) = load(tmp_path / "m.so").run(feed).values()
    assert_matches(actual, expected)
