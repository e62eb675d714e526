"""The load benchmark's generator (benchmarks/serve_load.py), briefly: its Poisson schedule
has the statistics of one, its ideal queue waits as queueing theory says, and against a
loopback `kiln serve` every request it counts is one the server counts (closed and open
loop, and --c1-only's turns), with latencies the server's own timings bound from below."""

from __future__ import annotations

import asyncio
import os

import numpy as np

from kiln.benchmarks.serve_load import closed_loop, ideal_queue, interleaved_c1, open_loop, \
    poisson_offsets, request_bytes
from serve_helpers import add_model, metric


def test_poisson_offsets_are_a_poisson_process():
    rate, seconds = 2000.0, 10.0
    offsets = poisson_offsets(rate, seconds, seed=3)
    expected = rate * seconds
    assert abs(len(offsets) - expected) < 4 * np.sqrt(expected), len(offsets)
    assert np.all(np.diff(offsets) > 0) and 0 <= offsets[0] and offsets[-1] < seconds
    gaps = np.diff(offsets)
    # exponential gaps: mean 1/rate, standard deviation equal to the mean
    assert abs(gaps.mean() * rate - 1) < 0.05
    assert abs(gaps.std() / gaps.mean() - 1) < 0.05
    # counts in 10 ms windows: Poisson, variance equal to the mean
    counts = np.histogram(offsets, bins=np.arange(0, seconds + 1e-9, 0.01))[0]
    assert abs(counts.var() / counts.mean() - 1) < 0.15


def test_the_ideal_queue_waits_as_pollaczek_khinchine_says():
    """M/D/1 (Poisson arrivals, a fixed run of 1 ms) at 80% load: the mean wait in the
    queue is rho / (2 (1 - rho)) runs, 2 ms."""
    responses = ideal_queue(np.array([1e-3]), 800.0, count=100_000, seed=1)
    assert abs((responses.mean() - 1e-3) / 2e-3 - 1) < 0.1, responses.mean()


def test_the_generator_counts_what_the_server_counts(artifacts, tmp_path):
    from kiln.serve.server import BackgroundServer, ServeOptions

    add_model(tmp_path, "conv", artifacts["conv"], config={"threads_per_instance": 1})
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    with BackgroundServer(tmp_path, ServeOptions(http_port=0, threads=1)) as background:
        port = background.server.port

        def successes() -> float:
            return metric(background.url, "kiln_inference_requests_total", model="conv",
                          version="1", outcome="success")

        for binary in (True, False):
            point = asyncio.run(closed_loop(port, request_bytes("conv", {"x": x}, binary), 2,
                                            0.3, "closed"))
            assert not point.errors and len(point.latencies) > 10, point.row()
        before = successes()
        point = asyncio.run(open_loop(port, request_bytes("conv", {"x": x}, True), 200.0, 0.5,
                                      "open"))
        assert not point.errors, point.row()
        assert successes() - before == len(point.latencies) > 50
        served = metric(background.url, "kiln_request_duration_seconds_sum", model="conv",
                        version="1") / successes()
        assert np.mean(point.latencies) > served   # the client's view includes the server's
        before = successes()
        floors, sweeps = interleaved_c1({"kiln": background.server}, artifacts["conv"],
                                        artifacts["conv.onnx"], "conv", {"x": x}, 1,
                                        {min(os.sched_getaffinity(0))},
                                        seconds=0.4, rounds=2)
        points = [sweeps["kiln"].closed[0], sweeps["kiln"].json_c1]
        # two turns of 0.2 s each, added up; the server also saw each turn's warm-up
        assert all(not p.errors and p.latencies and 0.4 <= p.wall < 0.6 for p in points)
        assert successes() - before > sum(len(p.latencies) for p in points)
        assert all(len(f.latencies) > 10 and 0.4 <= f.wall < 0.6 for f in floors)
