"""The calibration ranges (quantizer/statistics.py) on data whose answer is known: minmax
is the extremes, percentile within a bin of numpy's own percentiles, entropy clips a few far
outliers that minmax keeps; and the quantize pass's record and rewrite on a small graph."""

from __future__ import annotations

import numpy as np

from kiln.compiler.interpret import run_graph
from kiln.frontends.onnx import import_model
from kiln.passes.manager import PIPELINE, run_passes
from kiln.passes.quantize import QuantizeRequest, activation_params
from kiln.quantizer.statistics import BINS, calibrate

import qdq_models


def _batches(rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    batches = [{"t": rng.standard_normal(10_000).astype(np.float32)} for _ in range(4)]
    batches[2]["t"][:3] = [40.0, -35.0, 38.0]   # three outliers among 40,000 values
    return batches


def test_minmax_and_percentile_against_numpy():
    batches = _batches(np.random.default_rng(0))
    values = np.concatenate([b["t"] for b in batches])
    assert calibrate(lambda: iter(batches), "minmax")["t"] == (values.min(), values.max())
    low, high = calibrate(lambda: iter(batches), "percentile")["t"]
    bin_width = (values.max() - values.min()) / BINS
    assert abs(low - np.percentile(values, 0.01)) <= 2 * bin_width
    assert abs(high - np.percentile(values, 99.99)) <= 2 * bin_width


def test_entropy_clips_far_outliers():
    batches = _batches(np.random.default_rng(1))
    low, high = calibrate(lambda: iter(batches), "entropy")["t"]
    assert 2.5 < high < 20 and -20 < low < -2.5, (low, high)


def test_activation_params_hold_zero_exactly():
    scale, zero = activation_params(-1.0, 3.0)
    assert np.float32(scale) == np.float32(4.0 / 255) and int(zero) == 64
    assert activation_params(0.5, 2.0)[1] == 0        # widened to hold 0
    assert activation_params(0.0, 0.0) == (np.float32(1.0), np.uint8(0))


def test_the_pass_records_each_tensor_and_writes_integer_ops():
    """conv -> relu -> conv -> relu -> pool -> gemm: the first conv writes uint8 (its relu and
    the next quantize fused), the tensors read by layers are recorded in graph order, and the
    quantized graph's answer is within 3% of float's (the interpreter on both)."""
    rng = np.random.default_rng(2)
    graph = import_model(qdq_models.float_cnn(rng))
    x = rng.standard_normal(qdq_models.INPUT).astype(np.float32)
    ranges = {"x": (float(x.min()), float(x.max())), "r1": (0.0, 6.0), "f": (0.0, 3.0)}
    graph.metadata["quantize"] = QuantizeRequest("int8", ranges=ranges)
    float_graph = import_model(qdq_models.float_cnn(np.random.default_rng(2)))
    upto = [p.name for p in PIPELINE].index("channels_last")
    graph = run_passes(graph, verify_each=True, pipeline=PIPELINE[:upto])
    ops = [(n.op, n.attrs.get("out")) for n in graph.nodes if n.op in ("qconv2d", "qmatmul")]
    assert ops == [("qconv2d", "uint8"), ("qconv2d", "float32"), ("qmatmul", "float32")]
    records = graph.metadata["quantized"]
    assert [r.name for r in records] == ["x", "r1", "f"]
    assert all(r.scale is not None and r.layers for r in records)
    (want,) = run_graph(float_graph, {"x": x}).values()
    (got,) = run_graph(graph, {"x": x}).values()
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 0.03
