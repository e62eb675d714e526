"""The dynamic batcher against a running `kiln serve`: concurrent requests are joined into
batches (the batch-size metric shows batches of more than one row) and each gets exactly its
own answer, as ONNX Runtime computes it on that request alone; a request's own batch (3
rows) comes back as 3 rows, padded to a compiled size inside the server only; a batch over
max_batch_size is a 400; prebuilt model.b{N}.so artifacts split a batch larger than any of
them; metadata says -1 for the batch dim; metrics and the access log match the client's
own counts."""

from __future__ import annotations

import json
import shutil
import threading

import kiln
import numpy as np
import onnx
import pytest

from reference import assert_matches, run_onnxruntime
from serve_helpers import Connection, binary_answer, binary_body, metric, request
from serve_models import conv_model

CLIENTS, EACH = 8, 12
MAX_BATCH = 8


def rows_of(seed: int, rows: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 3, 16, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def batch_server(tmp_path_factory):
    """bconv: a model.onnx with a symbolic batch dim, compiled for 1, 4 and 8 rows, batching
    with a 5 ms queue delay; pconv: prebuilt model.so (1 row) and model.b4.so (4 rows);
    nconv: the same files with max_batch_size but no dynamic_batching."""
    from kiln.serve.server import BackgroundServer, ServeOptions

    root = tmp_path_factory.mktemp("batchrepo")
    (root / "bconv" / "1").mkdir(parents=True)
    onnx.save(conv_model("batch"), str(root / "bconv" / "1" / "model.onnx"))
    (root / "bconv" / "config.json").write_text(json.dumps({
        "max_batch_size": MAX_BATCH, "threads_per_instance": 1,
        "dynamic_batching": {"max_queue_delay_us": 5000, "preferred_batch_size": [4, 8]}}))
    (root / "pconv" / "1").mkdir(parents=True)
    for rows, name in ((1, "model.so"), (4, "model.b4.so")):
        kiln.compile(conv_model("batch"), output=str(root / "pconv" / "1" / name),
                     dims={"batch": rows})
    (root / "pconv" / "config.json").write_text(json.dumps({
        "max_batch_size": MAX_BATCH, "threads_per_instance": 1,
        "dynamic_batching": {"max_queue_delay_us": 0}}))
    shutil.copytree(root / "pconv", root / "nconv")   # a batch dim, but no joining
    (root / "nconv" / "config.json").write_text(json.dumps({
        "max_batch_size": MAX_BATCH, "threads_per_instance": 1}))
    log = root / "access.log"
    options = ServeOptions(http_port=0, threads=3, access_log=str(log),
                           cache_dir=str(tmp_path_factory.mktemp("batchcache")))
    with BackgroundServer(root, options) as background:
        background.access_log = log
        yield background


def counters(url: str, model: str) -> dict[str, float]:
    labels = {"model": model, "version": "1"}
    return {"success": metric(url, "kiln_inference_requests_total", outcome="success",
                              **labels),
            "invalid": metric(url, "kiln_inference_requests_total", outcome="invalid",
                              **labels),
            "batches": metric(url, "kiln_batch_size_count", **labels),
            "single": metric(url, "kiln_batch_size_bucket", le="1.0", **labels),
            "rows": metric(url, "kiln_batch_size_sum", **labels),
            "padded": metric(url, "kiln_padded_rows_total", **labels),
            "timed_out": metric(url, "kiln_inference_requests_total", outcome="timed_out",
                                **labels)}


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(batch_server):
    url = batch_server.url
    before = counters(url, "bconv")
    inputs = {(c, i): rows_of(100 * c + i, 1 + c % 2) for c in range(CLIENTS)
              for i in range(EACH)}
    answers: dict[tuple[int, int], tuple[int, dict, np.ndarray | None]] = {}
    start = threading.Barrier(CLIENTS)

    def client(c: int) -> None:
        connection = Connection(url)
        start.wait(10)
        try:
            for i in range(EACH):
                status, headers, body = connection.post("/v2/models/bconv/infer",
                                                        *binary_body("x", inputs[c, i]))
                answers[c, i] = (status, *binary_answer(headers, body)) if status == 200 \
                    else (status, {"error": body.decode()}, None)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == CLIENTS * EACH
    keys = sorted(inputs)
    (expected,) = run_onnxruntime(conv_model("batch"), {"x": np.concatenate(
        [inputs[k] for k in keys])})
    offset = 0
    for key in keys:
        status, response, y = answers[key]
        assert status == 200, response
        rows = inputs[key].shape[0]
        assert y.shape == (rows, 8, 16, 16) and response["model_version"] == "1"
        assert_matches(y, expected[offset:offset + rows], what=f"client {key}")
        offset += rows
    after = counters(url, "bconv")
    assert after["success"] - before["success"] == CLIENTS * EACH
    assert after["rows"] - before["rows"] == offset   # every row computed once, no padding
    batches = after["batches"] - before["batches"]
    print(f"{CLIENTS * EACH} requests of {offset} rows ran in {batches:.0f} batches")
    assert (after["batches"] - after["single"]) - (before["batches"] - before["single"]) > 0
    assert batches < CLIENTS * EACH   # requests were joined


def test_a_request_keeps_its_own_batch_and_one_over_the_maximum_is_a_400(batch_server):
    url = batch_server.url
    status, _, body = request(url, "GET", "/v2/models/bconv")
    metadata = json.loads(body)
    assert status == 200 and metadata["inputs"][0]["shape"] == [-1, 3, 16, 16]
    assert metadata["outputs"][0]["shape"] == [-1, 8, 16, 16]
    before = counters(url, "bconv")
    x = rows_of(7, 3)
    status, headers, body = request(url, "POST", "/v2/models/bconv/infer", *binary_body("x", x))
    assert status == 200, body
    _, y = binary_answer(headers, body)
    (expected,) = run_onnxruntime(conv_model("batch"), {"x": x})
    assert y.shape == (3, 8, 16, 16)
    assert_matches(y, expected)
    after = counters(url, "bconv")
    assert after["padded"] - before["padded"] == 1   # ran on the 4-row artifact
    assert after["rows"] - before["rows"] == 3
    for bad, phrase in ((rows_of(8, MAX_BATCH + 1), "takes 1 to 8 rows"),
                        (np.zeros((2, 3, 16, 15), np.float32), "[-1, 3, 16, 16]")):
        status, _, body = request(url, "POST", "/v2/models/bconv/infer",
                                  *binary_body("x", bad))
        assert status == 400 and phrase in json.loads(body)["error"], body
    assert counters(url, "bconv")["invalid"] - after["invalid"] == 2
    records = [json.loads(line) for line in
               batch_server.access_log.read_text().splitlines()]
    ok = [r for r in records if r["model"] == "bconv" and r["status"] == 200]
    assert ok[-1]["batch_size"] == 3 and ok[-1]["version"] == "1"
    assert ok[-1]["queue_ms"] >= 0 and ok[-1]["compute_ms"] > 0
    assert [r["status"] for r in records[-2:]] == [400, 400]
    assert records[-1]["compute_ms"] is None and records[-1]["batch_size"] is None
    assert len([r for r in records if r["model"] == "bconv"]) == \
        counters(url, "bconv")["success"] + counters(url, "bconv")["invalid"]
    x = rows_of(9, MAX_BATCH)   # its 64 KiB output goes out as a view on the batch's array
    status, headers, body = request(url, "POST", "/v2/models/bconv/infer", *binary_body("x", x))
    assert status == 200 and int(headers["content-length"]) == len(body), body
    _, y = binary_answer(headers, body)
    assert y.nbytes == 1 << 16
    assert_matches(y, run_onnxruntime(conv_model("batch"), {"x": x})[0])


def test_prebuilt_batch_artifacts_split_a_larger_batch(batch_server):
    url = batch_server.url
    x = rows_of(9, 6)   # pconv has artifacts of 1 and 4 rows: runs of 4 and 4 (2 padded)
    before = counters(url, "pconv")
    status, headers, body = request(url, "POST", "/v2/models/pconv/infer", *binary_body("x", x))
    assert status == 200, body
    _, y = binary_answer(headers, body)
    (expected,) = run_onnxruntime(conv_model("batch"), {"x": x})
    assert_matches(y, expected)
    assert counters(url, "pconv")["padded"] - before["padded"] == 2
    status, _, body = request(url, "GET", "/v2/models/pconv/versions/1/stats")
    (stats,) = json.loads(body)["model_stats"]
    assert [(b["batch_size"], b["compute_infer"]["count"]) for b in stats["batch_stats"]] \
        == [(6, 1)]
    assert stats["inference_count"] == 1 and stats["execution_count"] == 1


def test_a_request_whose_timeout_passes_waiting_for_company_is_never_computed(batch_server):
    """bconv waits 5 ms for company; a lone request that may wait only 1 ms is a 504, and
    no batch ran for it."""
    url = batch_server.url
    before = counters(url, "bconv")
    status, _, body = request(url, "POST", "/v2/models/bconv/infer",
                              *binary_body("x", rows_of(11, 1), timeout=1000))
    assert status == 504 and "not computed" in json.loads(body)["error"], body
    after = counters(url, "bconv")
    assert after["timed_out"] - before["timed_out"] == 1
    assert after["batches"] == before["batches"]


def test_without_dynamic_batching_each_request_runs_alone(batch_server):
    """nconv has max_batch_size but no dynamic_batching: concurrent requests of 2 rows each
    run one by one (on the 4-row artifact, 2 rows padded each), never joined."""
    url = batch_server.url
    before = counters(url, "nconv")
    inputs = [rows_of(200 + c, 2) for c in range(4)]
    answers: list = [None] * len(inputs)

    def client(c: int) -> None:
        status, headers, body = request(url, "POST", "/v2/models/nconv/infer",
                                        *binary_body("x", inputs[c]))
        answers[c] = (status, binary_answer(headers, body)[1] if status == 200 else body)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    (expected,) = run_onnxruntime(conv_model("batch"), {"x": np.concatenate(inputs)})
    for c, (status, y) in enumerate(answers):
        assert status == 200, y
        assert_matches(y, expected[2 * c:2 * c + 2])
    after = counters(url, "nconv")
    assert after["batches"] - before["batches"] == len(inputs)
    assert after["rows"] - before["rows"] == 2 * len(inputs)
    assert after["padded"] - before["padded"] == 2 * len(inputs)
