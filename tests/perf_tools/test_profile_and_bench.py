"""`kiln run --profile` (time per fused group) and the benchmark report's table."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import kiln
from kiln.benchmarks.models import Timing, render
from kiln.runtime import load
from kiln.runtime.profile import format_profile, profile


def _two_groups():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "W"], ["y"], name="conv", pads=[1] * 4),
             helper.make_node("MaxPool", ["y"], ["o"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2])]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "W")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_profile_names_every_group(tmp_path):
    path = kiln.compile(_two_groups(), output=tmp_path / "m.so")
    x = np.ones((1, 4, 8, 8), np.float32)
    with load(path, threads=2) as session:
        rows = profile(session, {"x": x}, runs=3)
        before = session.run({"x": x})["o"]
    names = [name for name, _ in rows]
    assert "conv" in names and "pool" in names and names.index("conv") < names.index("pool")
    assert all(seconds >= 0 for _, seconds in rows) and sum(s for _, s in rows) > 0
    assert before.shape == (1, 8, 4, 4)
    text = format_profile(rows)
    assert "conv" in text and "total" in text


def test_cli_run_profile(tmp_path):
    path = kiln.compile(_two_groups(), output=tmp_path / "m.so")
    result = subprocess.run([sys.executable, "-m", "kiln", "run", str(path), "--repeat", "2",
                             "--profile"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "pool" in result.stdout and "share" in result.stdout


def test_benchmark_table_has_ratios_and_ends_with_the_worst():
    def row(model, threads, busy, kiln_ms, ort_ms, batch=1):
        return {"model": model, "batch": batch, "threads": threads, "busy": busy,
                "compile_s": 1.0, "so_bytes": 2 ** 20, "weights": 2 ** 20, "error": 0.0,
                "timings": {"kiln": Timing(kiln_ms), "ort": Timing(ort_ms)}}

    rows = [row("m", 1, False, [1.0, 2.0, 3.0], [2.0, 4.0, 6.0]),
            row("n", 1, False, [3.0], [4.0]), row("m", 1, True, [3.0], [4.0]),
            row("m", 1, False, [8.0], [10.0], batch=8)]
    table = render(rows, "python -m kiln.benchmarks.models")
    assert "| m | 1 | 1 | - | 2.00 | 3.00 | 4.00 | 6.00 | 0.50 | 500.0 | 250.0 |" in table
    assert "| m | 8 | 1 | - | 8.00 | 8.00 | 10.00 | 10.00 | 0.80 | 1000.0 | 800.0 |" in table
    assert "latency at batch 1: **0.75** (n, 1 thread(s)" in table
    assert "throughput at batch 8: **1.25x** (m," in table
    assert "quiet ratio: **1.50x** (m, 1 thread(s); 0.75 busy, 0.50 quiet" in table


def test_a_wrong_answer_is_not_benchmarked():
    from kiln.benchmarks.models import WrongOutputError, check_outputs

    expected = np.linspace(-1, 1, 10, dtype=np.float32)
    ort = lambda feed: [expected]   # noqa: E731
    assert check_outputs("m", lambda feed: {"y": expected + 1e-5}, ort, {}) < 1e-4
    with pytest.raises(WrongOutputError, match="off ONNX Runtime's"):
        check_outputs("m", lambda feed: {"y": expected * 1.01}, ort, {})


def test_gemm_benchmark_checks_and_writes_its_table(tmp_path):
    from kiln.benchmarks.gemm import main

    out = tmp_path / "gemm.md"
    assert main(["--sizes", "48", "--no-model-shapes", "--output", str(out)]) == 0
    text = out.read_text()
    assert "python -m kiln.benchmarks.gemm --sizes 48" in text
    row = next(line for line in text.splitlines() if line.startswith("| 48x48x48 |"))
    kiln_gflops, peak = (float(cell) for cell in row.split("|")[2:4])
    assert 0 < kiln_gflops and 0 < peak
