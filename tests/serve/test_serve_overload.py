"""Overload on loopback, with bounded request counts: a full queue refuses at once with 503
and Retry-After; a request whose timeout passes in the queue is refused with 504 without
being computed; at twice the rate the model can serve, every request is answered at once
(success or 503), none times out, and the accepted ones stay within the queue's bound;
health probes are answered while the models are busy; the metrics count each outcome as
the client saw it."""

from __future__ import annotations

import json
import threading
import time

import numpy as np

from serve_helpers import Connection, ServerProcess, add_model, metric, request, slow_body

def burst(url: str, path: str, count: int) -> list[tuple[int, dict, bytes, float]]:
    """`count` requests sent at once from as many threads: (status, headers, body, seconds)
    of each."""
    body, headers = slow_body()
    start = threading.Barrier(count)
    results: list = [None] * count

    def send(i: int) -> None:
        start.wait()
        began = time.perf_counter()
        status, reply_headers, reply = request(url, "POST", path, body, headers)
        results[i] = (status, reply_headers, reply, time.perf_counter() - began)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(r is not None for r in results), "a request got no answer"
    return results


def outcomes(url: str, model: str) -> dict[str, float]:
    return {o: metric(url, "kiln_inference_requests_total", model=model, version="1",
                      outcome=o) for o in ("success", "rejected", "timed_out", "failed")}


def test_a_full_queue_refuses_at_once_with_503_and_retry_after(server):
    """Model "slow": one instance, a queue of one. Of 10 requests at once, at most the one
    running and the one queued can wait; the rest are refused without waiting for them."""
    before = outcomes(server.url, "slow")
    results = burst(server.url, "/v2/models/slow/infer", 10)
    statuses = [r[0] for r in results]
    assert set(statuses) <= {200, 503}, statuses
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 503]
    assert ok and refused, statuses
    for _, headers, body, seconds in refused:
        assert int(headers["retry-after"]) >= 1
        assert "the queue is full (1 requests waiting)" in json.loads(body)["error"]
        assert seconds < max(r[3] for r in ok), "a refusal waited for the queue"
    after = outcomes(server.url, "slow")
    assert after["success"] - before["success"] == len(ok)
    assert after["rejected"] - before["rejected"] == len(refused)
    assert after["failed"] == before["failed"] and after["timed_out"] == before["timed_out"]


def test_a_request_timed_out_in_the_queue_is_refused_without_being_computed(server, client):
    """Model "slowq": a queue of 16 and a 20 ms default timeout. Of 16 requests at once the
    ones still queued after 20 ms are answered 504, and no instance runs them."""
    stats = client.get_inference_statistics("slowq")["model_stats"][0]
    before = outcomes(server.url, "slowq")
    results = burst(server.url, "/v2/models/slowq/infer", 16)
    statuses = [r[0] for r in results]
    assert set(statuses) <= {200, 504}, statuses
    ok = statuses.count(200)
    timed_out = [r for r in results if r[0] == 504]
    assert ok and timed_out, statuses
    for _, _, body, _ in timed_out:
        error = json.loads(body)["error"]
        assert "past its timeout of 20.0 ms" in error and "it was not computed" in error
    after_stats = client.get_inference_statistics("slowq")["model_stats"][0]
    assert after_stats["execution_count"] - stats["execution_count"] == ok
    after = outcomes(server.url, "slowq")
    assert after["success"] - before["success"] == ok
    assert after["timed_out"] - before["timed_out"] == len(timed_out)
    assert metric(server.url, "kiln_queue_depth", model="slowq", version="1") == 0


def test_health_probes_are_answered_while_the_models_compute(server):
    stop = threading.Event()
    body, headers = slow_body()

    def load() -> None:
        while not stop.is_set():
            request(server.url, "POST", "/v2/models/slowq/infer", body, headers)

    workers = [threading.Thread(target=load) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.1)
        probes = []
        for _ in range(20):
            began = time.perf_counter()
            status, _, _ = request(server.url, "GET", "/v2/health/ready")
            probes.append((status, time.perf_counter() - began))
            time.sleep(0.01)
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)
    assert all(status == 200 for status, _ in probes), probes
    assert max(seconds for _, seconds in probes) < 0.5, probes


#: the overloaded model's queue: short, so that a request is refused rather than left to
#: wait past its timeout
OVERLOAD_QUEUE = 4
OVERLOAD_TIMEOUT_S = 0.5
#: seconds of traffic at twice the peak rate
OVERLOAD_SECONDS = 2.0
SENDERS = 16


def closed_loop_rate(url: str, path: str, clients: int, seconds: float) -> float:
    """Requests a second answered 200 with `clients` threads sending back to back: the
    model's peak rate when `clients` covers its instances and the hand-off."""
    body, headers = slow_body()
    done = [0] * clients
    end = time.perf_counter() + seconds

    def run(i: int) -> None:
        connection = Connection(url)
        try:
            while time.perf_counter() < end:
                status, _, _ = connection.post(path, body, headers)
                assert status == 200, status
                done[i] += 1
        finally:
            connection.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return sum(done) / (time.perf_counter() - began)


def open_loop(url: str, path: str, rate: float, seconds: float
              ) -> list[tuple[int, str, float, float]]:
    """Poisson arrivals at `rate` a second for `seconds`, sent by SENDERS threads on
    keep-alive connections: (status, error text, seconds from the scheduled send time to
    the answer, seconds from the actual send) of each. Timing from the scheduled time
    counts a request the client sent late (all senders busy) as waiting, so that a slow
    server cannot hide behind a slow client."""
    body, headers = slow_body()
    gaps = np.random.default_rng(7).exponential(1.0 / rate, int(rate * seconds * 1.5))
    offsets = np.cumsum(gaps)
    offsets = offsets[offsets < seconds]
    results: list = [None] * len(offsets)
    next_index = iter(range(len(offsets)))
    lock = threading.Lock()
    start = time.perf_counter() + 0.05

    def run() -> None:
        connection = Connection(url, timeout=10)
        try:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                scheduled = start + offsets[i]
                pause = scheduled - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                sent = time.perf_counter()
                status, _, reply = connection.post(path, body, headers)
                answered = time.perf_counter()
                error = json.loads(reply)["error"] if status != 200 else ""
                results[i] = (status, error, answered - scheduled, answered - sent)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(r is not None for r in results), "a request got no answer"
    return results


def test_twice_the_peak_rate_is_answered_with_successes_and_prompt_503s(artifacts, tmp_path):
    """`kiln serve` as a process, the slow model on one thread behind a queue of 4 and a
    0.5 s queue timeout. Its peak rate measured closed loop, then Poisson arrivals at twice
    that: each answer is a 200 or a 503 (never a 504, a 500 or no answer), a 503 comes
    without queueing, the accepted p99 stays under the queue timeout plus one service time,
    and the server's counters equal the client's counts."""
    add_model(tmp_path, "hot", artifacts["slow"],
              config={"max_queue_size": OVERLOAD_QUEUE, "threads_per_instance": 1,
                      "default_timeout_ms": OVERLOAD_TIMEOUT_S * 1e3})
    server = ServerProcess(str(tmp_path), "--threads", "1")
    try:
        server.wait_for("1 of 1 model(s) ready")
        path = "/v2/models/hot/infer"
        peak = closed_loop_rate(server.url, path, 2, 1.0)
        compute = metric(server.url, "kiln_compute_duration_seconds_sum", model="hot",
                         version="1") / metric(server.url, "kiln_compute_duration_seconds_count",
                                               model="hot", version="1")
        before = outcomes(server.url, "hot")
        results = open_loop(server.url, path, 2 * peak, OVERLOAD_SECONDS)
        after = outcomes(server.url, "hot")
    finally:
        server.close()
    statuses = [r[0] for r in results]
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    accepted = np.array([r[2] for r in results if r[0] == 200])
    refused = [r for r in results if r[0] == 503]
    # twice the peak: about half must be refused, and the model kept busy
    assert len(refused) > len(results) / 4, (len(refused), len(results), peak)
    assert len(accepted) > peak * OVERLOAD_SECONDS / 2, (len(accepted), peak)
    for _, error, _, on_the_wire in refused:
        assert "the queue is full" in error, error
    refusal_wire = np.array([r[3] for r in refused])
    # a refusal waits for no run: its median is far below one service time, and not one
    # waits for the queue to move
    assert np.median(refusal_wire) < compute / 2, (np.median(refusal_wire), compute)
    assert refusal_wire.max() < OVERLOAD_QUEUE * compute + OVERLOAD_TIMEOUT_S / 2, \
        refusal_wire.max()
    p99 = float(np.percentile(accepted, 99))
    assert p99 < OVERLOAD_TIMEOUT_S + compute, (p99, compute)
    assert after["success"] - before["success"] == len(accepted)
    assert after["rejected"] - before["rejected"] == len(refused)
    assert after["timed_out"] == before["timed_out"] and after["failed"] == before["failed"]
