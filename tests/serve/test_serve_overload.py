"""Overload on loopback, with bounded request counts: a full queue refuses at once with 503
and Retry-After; a request whose timeout passes in the queue is refused with 504 without
being computed; health probes are answered while the models are busy; the metrics count
each outcome as the client saw it."""

from __future__ import annotations

import json
import threading
import time


from serve_helpers import metric, request, slow_body

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
