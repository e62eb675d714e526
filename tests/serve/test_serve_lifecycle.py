"""`kiln serve` as a process: it prints its thread budget and address, serves, and on
SIGTERM turns not ready at once, refuses new requests, answers every request in flight,
and exits 0. A model whose run reports an error status fails that request alone (500) and
the server serves on. And the command's own errors: a missing repository, a missing
extra."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

import numpy as np
import pytest

from reference import assert_model_output, run_onnxruntime
from serve_helpers import ServerProcess, add_model, binary_answer, binary_body, metric, \
    request, slow_body
from serve_models import conv_model


#: requests in flight when SIGTERM comes: enough that the drain takes a while (the slow
#: model runs for milliseconds each, one at a time)
REQUESTS = 32


@pytest.fixture
def drain_repo(artifacts, tmp_path):
    add_model(tmp_path, "slow", artifacts["slow"],
              config={"max_queue_size": 64, "threads_per_instance": 1})
    return tmp_path


def test_sigterm_answers_every_request_in_flight_then_exits(drain_repo):
    server = ServerProcess(str(drain_repo), "--threads", "2", "--grace-period", "30")
    try:
        assert "runtime thread budget 2" in "".join(server.output)
        server.wait_for("1 of 1 model(s) ready")
        assert request(server.url, "GET", "/v2/health/ready")[0] == 200
        body, headers = slow_body()
        results: list = []

        def send() -> None:
            results.append(request(server.url, "POST", "/v2/models/slow/infer", body,
                                   headers)[0])

        senders = [threading.Thread(target=send) for _ in range(REQUESTS)]
        for sender in senders:
            sender.start()
        end = time.monotonic() + 30   # until every request is answered or in the server
        while metric(server.url, "kiln_requests_in_flight") + metric(
                server.url, "kiln_inference_requests_total", model="slow", version="1",
                outcome="success") < REQUESTS:
            assert time.monotonic() < end, "the requests never arrived"
        assert metric(server.url, "kiln_requests_in_flight") > 0, "all done: nothing to drain"
        server.process.send_signal(signal.SIGTERM)
        server.wait_for("shutting down")
        status, _, reply = request(server.url, "GET", "/v2/health/ready")
        assert status == 400 and "shutting down" in json.loads(reply)["error"]
        status, headers_503, reply = request(server.url, "POST", "/v2/models/slow/infer",
                                             body, headers)
        assert status == 503 and "retry-after" in headers_503
        for sender in senders:
            sender.join(60)
        assert results == [200] * REQUESTS, results
        assert server.process.wait(30) == 0
        server.wait_for("kiln serve: stopped")
    finally:
        server.close()


def test_serve_reports_a_missing_repository(tmp_path, capsys):
    from kiln.cli import main

    assert main(["serve", str(tmp_path / "nothing")]) == 2
    error = capsys.readouterr().err
    assert "nothing: no such file or folder" in error and "repository folder" in error


def test_serve_without_its_extra_names_the_pip_command(tmp_path, capsys, monkeypatch):
    from kiln.cli import main

    monkeypatch.setitem(sys.modules, "uvicorn", None)   # as if it were not installed
    assert main(["serve", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "kiln serve needs uvicorn" in error and "pip install 'kiln-aot[serve]'" in error


def test_live_at_once_ready_only_once_loaded(artifacts, tmp_path):
    """The model.onnx compiles for a second or more after the server listens: meanwhile it
    is live, not ready, and the model says it is loading; then both are ready."""
    add_model(tmp_path, "conv", artifacts["conv.onnx"])
    server = ServerProcess(str(tmp_path), "--threads", "1")
    try:
        assert request(server.url, "GET", "/v2/health/live")[0] == 200
        status, _, reply = request(server.url, "GET", "/v2/health/ready")
        assert status == 400 and "still loading" in json.loads(reply)["error"]
        status, _, reply = request(server.url, "GET", "/v2/models/conv/ready")
        assert status == 400 and "loading" in json.loads(reply)["error"]
        server.wait_for("1 of 1 model(s) ready")
        assert request(server.url, "GET", "/v2/health/ready")[0] == 200
        assert request(server.url, "GET", "/v2/models/conv/ready")[0] == 200
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(30) == 0
    finally:
        server.close()


def test_the_grace_period_bounds_the_drain(drain_repo):
    """With far more queued work than 50 ms of grace, the process still exits promptly
    after SIGTERM: the requests still queued are answered 503 uncomputed (their clients can
    retry elsewhere), and it says how many."""
    server = ServerProcess(str(drain_repo), "--threads", "1", "--grace-period", "0.05")
    try:
        server.wait_for("1 of 1 model(s) ready")
        body, headers = slow_body()
        count = 60
        statuses: list = []

        def send() -> None:
            try:
                statuses.append(request(server.url, "POST", "/v2/models/slow/infer", body,
                                        headers)[0])
            except OSError as exc:   # connected after the listener closed, or dropped
                statuses.append(type(exc).__name__)

        senders = [threading.Thread(target=send, daemon=True) for _ in range(count)]
        for sender in senders:
            sender.start()
        end = time.monotonic() + 30
        while metric(server.url, "kiln_queue_depth", model="slow", version="1") < 40:
            assert time.monotonic() < end, "the requests never queued up"
        began = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) == 0
        assert time.monotonic() - began < 5
        line = server.wait_for("the grace period passed with")
        refused = int(line.split(": ")[-1].split()[0])
        assert refused >= 30, line
        server.wait_for("kiln serve: stopped")
        for sender in senders:
            sender.join(10)
        # every request the server had queued got an answer: 200 or 503, none dropped
        assert statuses.count(503) >= refused, statuses
        assert statuses.count(200) + statuses.count(503) >= 40, statuses
    finally:
        server.close()


def test_unload_answers_the_queued_requests_first(drain_repo):
    """An unload through the repository API while requests wait: each of them is answered
    (computed), later ones are refused as not ready, and the threads are given back."""
    import tritonclient.http as httpclient

    from kiln.serve.server import BackgroundServer, ServeOptions

    with BackgroundServer(drain_repo, ServeOptions(http_port=0, threads=1)) as background:
        body, headers = slow_body()
        results: list = []
        senders = [threading.Thread(target=lambda: results.append(request(
            background.url, "POST", "/v2/models/slow/infer", body, headers)[0]))
            for _ in range(8)]
        for sender in senders:
            sender.start()
        end = time.monotonic() + 30
        while metric(background.url, "kiln_requests_in_flight") + metric(
                background.url, "kiln_inference_requests_total", model="slow", version="1",
                outcome="success") < 8:
            assert time.monotonic() < end, "the requests never arrived"
        client = httpclient.InferenceServerClient(background.url, network_timeout=60)
        try:
            client.unload_model("slow")
            for sender in senders:
                sender.join(60)
            assert results == [200] * 8, results
            assert not client.is_model_ready("slow")
            assert request(background.url, "POST", "/v2/models/slow/infer", body,
                           headers)[0] == 503
            assert metric(background.url, "kiln_runtime_threads") == 0
        finally:
            client.close()


def test_a_run_that_reports_an_error_status_fails_its_request_alone(artifacts, tmp_path):
    """The C session behind model "broken" is destroyed behind its loader's back, so the
    artifact's session_run reports KILN_INVALID_ARGUMENT (not a live session) on every run:
    each request to it is a 500 saying so, counted as failed, while its worker, the health
    probes and model "good" go on serving."""
    from kiln.serve.server import BackgroundServer, ServeOptions

    for name in ("broken", "good"):
        add_model(tmp_path, name, artifacts["conv"], config={"threads_per_instance": 1})
    with BackgroundServer(tmp_path, ServeOptions(http_port=0, threads=2)) as background:
        url = background.url
        (session,) = background.server.repository.version("broken", None).sessions
        session._lib["session_destroy"](session._handle)   # the pointer is now stale
        x = np.random.default_rng(4).standard_normal((1, 3, 16, 16)).astype(np.float32)
        (expected,) = run_onnxruntime(conv_model(), {"x": x})
        for attempt in range(3):   # the worker outlives each failure
            status, _, body = request(url, "POST", "/v2/models/broken/infer",
                                      *binary_body("x", x))
            assert status == 500, body
            error = json.loads(body)["error"]
            assert "model 'broken' version 1 failed to run" in error, error
            assert "invalid argument" in error and "not a live session" in error, error
            assert request(url, "GET", "/v2/health/ready")[0] == 200
            status, headers, body = request(url, "POST", "/v2/models/good/infer",
                                            *binary_body("x", x))
            assert status == 200, body
            assert_model_output(binary_answer(headers, body)[1], expected)
        assert metric(url, "kiln_inference_requests_total", model="broken", version="1",
                      outcome="failed") == 3
        assert metric(url, "kiln_inference_requests_total", model="good", version="1",
                      outcome="success") == 3
        stats = json.loads(request(url, "GET", "/v2/models/broken/stats")[2])
        assert stats["model_stats"][0]["inference_stats"]["fail"]["count"] == 3
