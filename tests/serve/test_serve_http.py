"""The Open Inference Protocol over REST against a running `kiln serve`, through the Triton
client and plain HTTP: metadata, readiness, inference matching ONNX Runtime (a CNN and BERT,
binary and JSON bodies, every datatype), the repository extension, statistics and metrics;
bad requests each answered with a clear 400/404/413 and the server unharmed."""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from serve_helpers import CODECS, json_codec, metric, post_json, request
from reference import assert_matches, assert_model_output, run_onnxruntime
from serve_models import DTYPES, conv_model, dtype_feed, dtypes_model
from kiln import zoo

TRITON_TYPES = {np.dtype(np.bool_): "BOOL", np.dtype(np.uint8): "UINT8",
                np.dtype(np.int8): "INT8", np.dtype(np.uint16): "UINT16",
                np.dtype(np.int16): "INT16", np.dtype(np.int32): "INT32",
                np.dtype(np.int64): "INT64", np.dtype(np.uint32): "UINT32",
                np.dtype(np.uint64): "UINT64", np.dtype(np.float16): "FP16",
                np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64",
                np.dtype(ml_dtypes.bfloat16): "BF16"}


def conv_input(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 3, 16, 16)).astype(np.float32)


def infer(client, model: str, feed: dict[str, np.ndarray], binary: bool = True,
          outputs: list[str] | None = None, version: str = "") -> httpclient.InferResult:
    inputs = []
    for name, value in feed.items():
        datatype = TRITON_TYPES[value.dtype]
        tensor = httpclient.InferInput(name, list(value.shape), datatype)
        # the client sends BF16 as binary only (JSON has no 16-bit floats)
        tensor.set_data_from_numpy(value, binary_data=binary or datatype == "BF16")
        inputs.append(tensor)
    wanted = None if outputs is None else [
        httpclient.InferRequestedOutput(n, binary_data=binary or n.endswith("bf16"))
        for n in outputs]
    return client.infer(model, inputs, outputs=wanted, model_version=version)


def test_server_metadata_and_health(client):
    assert client.is_server_live() and client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "kiln"
    assert {"binary_tensor_data", "model_repository", "statistics"} <= set(
        metadata["extensions"])


def test_model_metadata(client):
    metadata = client.get_model_metadata("conv")
    assert metadata["versions"] == ["1", "2"] and metadata["platform"] == "kiln"
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [1, 3, 16, 16]}]
    assert metadata["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [1, 8, 16, 16]}]
    assert client.get_model_metadata("conv", "2")["inputs"] == metadata["inputs"]
    bert = client.get_model_metadata("bert")
    assert [(t["name"], t["datatype"], t["shape"]) for t in bert["inputs"]] == [
        (name, "INT64", [1, 16]) for name in ("input_ids", "attention_mask", "token_type_ids")]
    assert client.is_model_ready("conv") and client.is_model_ready("conv", "2")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_conv_matches_onnxruntime(client, binary):
    x = conv_input()
    (expected,) = run_onnxruntime(conv_model(), {"x": x})
    for version in ("", "1", "2"):
        result = infer(client, "conv", {"x": x}, binary=binary, version=version)
        assert_model_output(result.as_numpy("y"), expected, what=f"conv {version or 'latest'}")
    assert result.get_response()["model_version"] == "2"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_bert_matches_onnxruntime(client, binary):
    rng = np.random.default_rng(7)
    mask = np.ones((1, 16), np.int64)
    mask[:, 12:] = 0
    feed = {"input_ids": rng.integers(0, 30522, (1, 16)).astype(np.int64),
            "attention_mask": mask,
            "token_type_ids": np.repeat([[0, 1]], 8, axis=1).astype(np.int64)}
    (expected,) = run_onnxruntime(zoo.load("bert_small_random"), feed)
    result = infer(client, "bert", feed, binary=binary)
    assert_model_output(result.as_numpy("last_hidden_state"), expected, what="bert")


def dtype_reference(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ONNX Runtime's answer for each datatype (BF16, which its Python API cannot take,
    by numpy: double the value, rounded to bfloat16)."""
    expected = {}
    for suffix in DTYPES:
        x = feed[f"in_{suffix}"]
        if suffix == "bf16":
            expected["out_bf16"] = (x.astype(np.float32) * 2).astype(ml_dtypes.bfloat16)
        else:
            (expected[f"out_{suffix}"],) = run_onnxruntime(dtypes_model([suffix]),
                                                           {f"in_{suffix}": x})
    return expected


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_every_datatype_round_trips(client, binary):
    feed = dtype_feed()
    metadata = client.get_model_metadata("dtypes")
    assert sorted(t["datatype"] for t in metadata["inputs"]) == sorted(TRITON_TYPES.values())
    result = infer(client, "dtypes", feed, binary=binary,
                   outputs=[t["name"] for t in metadata["outputs"]])
    for name, expected in dtype_reference(feed).items():
        actual = result.as_numpy(name)
        assert actual.dtype == expected.dtype, name
        assert_matches(actual.astype(np.float64) if name == "out_bf16" else actual,
                       expected.astype(np.float64) if name == "out_bf16" else expected,
                       what=name)


def test_requested_outputs_subset_and_mixed_encodings(server):
    """Only the outputs asked for come back, each as binary or JSON as it asked."""
    feed = dtype_feed(seed=11)
    i32, f64 = feed["in_i32"], feed["in_f64"]
    others = [{"name": name, "shape": list(value.shape), "datatype": TRITON_TYPES[value.dtype],
               "data": value.astype(np.float32).reshape(-1).tolist()
               if value.dtype == ml_dtypes.bfloat16 else value.reshape(-1).tolist()}
              for name, value in feed.items() if name not in ("in_i32", "in_f64")]
    header = {"id": "req-7",
              "inputs": [{"name": "in_i32", "shape": [2, 3], "datatype": "INT32",
                          "parameters": {"binary_data_size": i32.nbytes}},
                         {"name": "in_f64", "shape": [2, 3], "datatype": "FP64",
                          "data": f64.tolist()}] + others,   # nested lists
              "outputs": [{"name": "out_f64"}, {"name": "out_bf16"},
                          {"name": "out_i32", "parameters": {"binary_data": True}}]}
    head = json.dumps(header).encode()
    status, headers, body = request(server.url, "POST", "/v2/models/dtypes/infer",
                                    head + i32.tobytes(),
                                    {"Inference-Header-Content-Length": str(len(head))})
    assert status == 200, body
    length = int(headers["inference-header-content-length"])
    response = json.loads(body[:length])
    assert response["id"] == "req-7" and response["model_name"] == "dtypes"
    assert [o["name"] for o in response["outputs"]] == ["out_f64", "out_bf16", "out_i32"]
    f64_out, bf16_out, i32_out = response["outputs"]
    np.testing.assert_array_equal(np.array(f64_out["data"]).reshape(2, 3), f64 * 2)
    assert bf16_out["datatype"] == "BF16"   # as JSON numbers: the bfloat16 values exactly
    np.testing.assert_array_equal(
        np.array(bf16_out["data"], np.float32).reshape(2, 3),
        (feed["in_bf16"].astype(np.float32) * 2).astype(ml_dtypes.bfloat16).astype(np.float32))
    assert i32_out["parameters"]["binary_data_size"] == 24 and len(body) == length + 24
    np.testing.assert_array_equal(np.frombuffer(body[length:], "<i4").reshape(2, 3), i32 * 2)


def test_onnx_model_is_compiled_on_load_into_the_cache(client, repo):
    cached = list((repo / ".kiln-cache").glob("*/model.so"))
    assert len(cached) == 1, cached
    x = conv_input(seed=4)
    (expected,) = run_onnxruntime(conv_model(), {"x": x})
    assert_model_output(infer(client, "onnxconv", {"x": x}).as_numpy("y"), expected)


def test_broken_models_are_unavailable_with_reasons_and_the_others_serve(server, client):
    index = {(e["name"], e.get("version")): e for e in client.get_model_repository_index()}
    reasons = {name: entry["reason"] for (name, _), entry in index.items()
               if entry["state"] != "READY"}
    assert set(reasons) == {"misspelt", "badjson", "float8", "noartifact"}, reasons
    assert "misspelt/config.json" in reasons["misspelt"]
    assert "unknown field 'max_queue_sise'" in reasons["misspelt"]
    assert "did you mean 'max_queue_size'" in reasons["misspelt"]
    assert "badjson/config.json: not valid JSON" in reasons["badjson"]
    assert "line 1 column" in reasons["badjson"]
    assert "'x'" in reasons["float8"] and "no Open Inference Protocol datatype" in \
        reasons["float8"]
    assert "holds neither model.so nor model.onnx" in reasons["noartifact"]
    status, _, ready_index = post_json(server.url, "/v2/repository/index", {"ready": True})
    assert status == 200
    ready = {entry["name"] for entry in ready_index}
    assert {"conv", "bert", "dtypes", "onnxconv", "slow"} <= ready
    assert not ready & set(reasons)
    status, _, body = request(server.url, "GET", "/v2/models/misspelt/ready")
    assert status == 400 and "max_queue_sise" in json.loads(body)["error"]
    status, headers, body = post_json(server.url, "/v2/models/misspelt/infer", {"inputs": []})
    assert status == 503 and "max_queue_sise" in body["error"] and "retry-after" in headers
    assert not client.is_model_ready("float8")
    assert client.is_server_ready()   # other models serve (not --strict-readiness)


def test_unload_then_load_through_the_repository_api(client, server):
    x = conv_input(seed=5)
    threads = metric(server.url, "kiln_runtime_threads")
    client.unload_model("spare")
    assert not client.is_model_ready("spare")
    assert metric(server.url, "kiln_runtime_threads") == threads - 1
    state = [e for e in client.get_model_repository_index() if e["name"] == "spare"]
    assert state[0]["state"] == "UNAVAILABLE" and "unloaded" in state[0]["reason"]
    with pytest.raises(InferenceServerException, match="not ready"):
        infer(client, "spare", {"x": x})
    client.load_model("spare")
    assert client.is_model_ready("spare")
    assert metric(server.url, "kiln_runtime_threads") == threads
    (expected,) = run_onnxruntime(conv_model(), {"x": x})
    assert_model_output(infer(client, "spare", {"x": x}).as_numpy("y"), expected)
    with pytest.raises(InferenceServerException, match="no model 'nothere'"):
        client.load_model("nothere")


def conv_body(**changes) -> dict:
    x = conv_input()
    tensor = {"name": "x", "shape": [1, 3, 16, 16], "datatype": "FP32",
              "data": x.reshape(-1).tolist()}
    tensor.update(changes)
    return {"inputs": [tensor]}


def binary_conv(declared_size: int, sent: int, header_length_delta: int = 0):
    head = json.dumps({"inputs": [{"name": "x", "shape": [1, 3, 16, 16], "datatype": "FP32",
                                   "parameters": {"binary_data_size": declared_size}}]}).encode()
    return head + bytes(sent), {"Inference-Header-Content-Length":
                                str(len(head) + header_length_delta)}


def as_json(obj) -> tuple[bytes, dict[str, str]]:
    return json.dumps(obj).encode(), {"Content-Type": "application/json"}


BAD_REQUESTS = {
    "unknown input": ("POST", "/v2/models/conv/infer", as_json(conv_body(name="z")), 400,
                      ["unknown input 'z'", "x (FP32 [1, 3, 16, 16])"]),
    "missing input": ("POST", "/v2/models/conv/infer", as_json({"inputs": []}), 400,
                      ["missing input(s): 'x'"]),
    "wrong shape": ("POST", "/v2/models/conv/infer", as_json(conv_body(shape=[1, 3, 16])),
                    400, ["input 'x'", "expected shape [1, 3, 16, 16], got [1, 3, 16]"]),
    "wrong datatype": ("POST", "/v2/models/conv/infer",
                       as_json(conv_body(datatype="INT32")), 400,
                       ["input 'x'", "expected datatype FP32, got \"INT32\""]),
    "bytes datatype": ("POST", "/v2/models/conv/infer",
                       as_json(conv_body(datatype="BYTES")), 400,
                       ["BYTES (strings) is not supported"]),
    "data length": ("POST", "/v2/models/conv/infer", as_json(conv_body(data=[1.0] * 5)),
                    400, ["input 'x'", "'data' has 5 elements", "needs 768"]),
    "strings as data": ("POST", "/v2/models/conv/infer",
                        as_json(conv_body(data=["a"] * 768)), 400, ["must be numbers"]),
    "malformed json": ("POST", "/v2/models/conv/infer",
                       (b'{"inputs": [', {"Content-Type": "application/json"}), 400,
                       ["not valid JSON"]),
    "not UTF-8": ("POST", "/v2/models/conv/infer",
                  (b'{"id": "\xff"}', {"Content-Type": "application/json"}), 400,
                  ["not UTF-8 text"]),
    "nested too deeply": ("POST", "/v2/models/conv/infer",
                          (b'{"inputs": ' + b"[" * 100_000, {}), 400, ["nest too deeply"]),
    "integer past 64 bits": ("POST", "/v2/models/dtypes/infer",
                             as_json({"inputs": [{"name": "in_u64", "shape": [2, 3],
                                                  "datatype": "UINT64",
                                                  "data": [2**64] * 6}]}), 400,
                             ["input 'in_u64'", "value 18446744073709551616 is out of the "
                                                "range of UINT64"]),
    "binary size": ("POST", "/v2/models/conv/infer", binary_conv(100, 100), 400,
                    ["binary_data_size is 100 bytes", "takes 3072"]),
    "binary short": ("POST", "/v2/models/conv/infer", binary_conv(3072, 3000), 400,
                     ["run past the end of the body"]),
    "binary extra": ("POST", "/v2/models/conv/infer", binary_conv(3072, 3080), 400,
                     ["3080 bytes of binary data", "add up to 3072"]),
    "header length": ("POST", "/v2/models/conv/infer", binary_conv(3072, 0, 10_000), 400,
                      ["Inference-Header-Content-Length"]),
    "fraction for an integer": (
        "POST", "/v2/models/bert/infer",
        as_json({"inputs": [{"name": n, "shape": [1, 16], "datatype": "INT64",
                             "data": [1.5] * 16} for n in ("input_ids", "attention_mask",
                                                           "token_type_ids")]}), 400,
        ["input 'input_ids'", "INT64 data must be integers, got fractions"]),
    "out of range": ("POST", "/v2/models/dtypes/infer",
                     as_json({"inputs": [{"name": "in_u8", "shape": [2, 3],
                                          "datatype": "UINT8", "data": [300] * 6}]}), 400,
                     ["input 'in_u8'", "value 300 is out of the range of UINT8"]),
    "unknown output": ("POST", "/v2/models/conv/infer",
                       as_json({**conv_body(), "outputs": [{"name": "q"}]}), 400,
                       ["unknown output 'q'", "outputs are: y"]),
    "unknown model": ("POST", "/v2/models/nosuch/infer", as_json(conv_body()), 404,
                      ["unknown model 'nosuch'", "conv"]),
    "unknown version": ("POST", "/v2/models/conv/versions/7/infer", as_json(conv_body()),
                        404, ["model 'conv' has no version '7'", "1, 2"]),
    "unknown version metadata": ("GET", "/v2/models/conv/versions/x", (None, {}), 404,
                                 ["no version 'x'"]),
    "unknown endpoint": ("GET", "/v2/nothing", (None, {}), 404, ["no endpoint /v2/nothing"]),
    "wrong method": ("GET", "/v2/models/conv/infer", (None, {}), 405, ["use POST"]),
    "oversized body": ("POST", "/v2/models/conv/infer",
                       (b"[" + b"0," * (1 << 20) + b"0]", {}), 413, ["over the server's limit"]),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_is_answered_clearly_and_the_server_serves_on(client, server, case):
    """Each case under both JSON codecs: the same answer, word for word."""
    method, path, (body, headers), status, phrases = BAD_REQUESTS[case]
    errors = {}
    for codec in CODECS:
        with json_codec(codec):
            got, reply_headers, reply = request(server.url, method, path, body, headers)
        assert got == status, (codec, reply)
        assert reply_headers["content-type"] == "application/json"
        errors[codec] = json.loads(reply)["error"]
        for phrase in phrases:
            assert phrase in errors[codec], (codec, errors[codec])
    assert errors["orjson"] == errors["json"]
    assert client.is_server_live() and client.is_server_ready()
    x = conv_input(seed=2)
    (expected,) = run_onnxruntime(conv_model(), {"x": x})
    assert_model_output(infer(client, "conv", {"x": x}).as_numpy("y"), expected)


def test_statistics_count_the_requests(client):
    before = client.get_inference_statistics("conv", "1")["model_stats"][0]
    for _ in range(3):
        infer(client, "conv", {"x": conv_input()}, version="1")
    after = client.get_inference_statistics("conv", "1")["model_stats"][0]
    assert after["inference_count"] - before["inference_count"] == 3
    assert after["execution_count"] - before["execution_count"] == 3
    success = after["inference_stats"]["success"]
    assert success["count"] - before["inference_stats"]["success"]["count"] == 3
    assert success["ns"] > before["inference_stats"]["success"]["ns"]


def test_metrics_count_what_the_client_saw(client, server):
    labels = {"model": "conv", "version": "2"}

    def counts() -> dict[str, float]:
        return {outcome: metric(server.url, "kiln_inference_requests_total", outcome=outcome,
                                **labels) for outcome in ("success", "invalid")}

    def histogram_count(name: str) -> float:
        return metric(server.url, f"{name}_count", **labels)

    before = counts()
    histograms = {n: histogram_count(n) for n in ("kiln_queue_duration_seconds",
                                                  "kiln_compute_duration_seconds",
                                                  "kiln_request_duration_seconds")}
    successes, failures = 0, 0
    for i in range(7):
        if i % 3 == 2:
            status, _, _ = post_json(server.url, "/v2/models/conv/versions/2/infer",
                                     conv_body(shape=[3]))
            failures += status == 400
        else:
            infer(client, "conv", {"x": conv_input(seed=i)}, version="2")
            successes += 1
    after = counts()
    assert after["success"] - before["success"] == successes == 5
    assert after["invalid"] - before["invalid"] == failures == 2
    for name, count in histograms.items():
        assert histogram_count(name) - count == successes, name
    assert metric(server.url, "kiln_thread_budget") == 8
    assert metric(server.url, "kiln_queue_depth", **labels) == 0


def test_a_gzip_body_is_accepted(server):
    import gzip

    x = conv_input(seed=9)
    body = gzip.compress(json.dumps(conv_body(data=x.reshape(-1).tolist())).encode())
    status, _, reply = request(server.url, "POST", "/v2/models/conv/infer", body,
                               {"Content-Encoding": "gzip"})
    assert status == 200, reply
    (expected,) = run_onnxruntime(conv_model(), {"x": x})
    actual = np.array(json.loads(reply)["outputs"][0]["data"], np.float32).reshape(1, 8, 16, 16)
    assert_model_output(actual, expected)


def test_a_body_in_several_messages_is_read_once_with_its_binary_data_aligned(server):
    """A body that comes in one message is used as it is; one in several is joined into one
    buffer where the binary data after the JSON header starts 64-byte aligned, so that the
    inputs are views the runtime takes without copying (it copies misaligned ones)."""
    import asyncio

    from kiln.runtime import TensorInfo
    from kiln.serve.protocol import parse_infer_request

    x = np.random.default_rng(4).standard_normal((3, 5000)).astype(np.float32)
    head = json.dumps({"inputs": [{"name": "x", "shape": [3, 5000], "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}]}).encode()
    head += b" " * (-len(head) % 4 + 1)   # a header of 4k + 1 bytes: misaligned as sent
    body = head + x.tobytes()
    scope = {"headers": [(b"inference-header-content-length", str(len(head)).encode())]}

    def read(chunks: list[bytes]):
        messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                    for i, c in enumerate(chunks)]

        async def receive() -> dict:
            return messages.pop(0)

        return asyncio.run(server.server.app._body(scope, receive))

    assert read([body]) is body
    joined = read([body[i:i + 7000] for i in range(0, len(body), 7000)])
    assert bytes(joined) == body
    decoded = parse_infer_request(joined, str(len(head)),
                                  [TensorInfo("x", x.dtype, x.shape, x.nbytes)], [])
    array = decoded.inputs["x"]
    assert array.ctypes.data % 64 == 0 and np.shares_memory(array, np.asarray(joined))
    np.testing.assert_array_equal(array, x)


def test_a_request_timeout_shorter_than_the_hand_off_is_refused_uncomputed(client):
    """tritonclient's `timeout` (microseconds) bounds the wait in the queue: 1 us passes
    before an instance can take the request, so it is refused and not run."""
    before = client.get_inference_statistics("conv", "1")["model_stats"][0]
    x = httpclient.InferInput("x", [1, 3, 16, 16], "FP32")
    x.set_data_from_numpy(conv_input())
    with pytest.raises(InferenceServerException) as error:
        client.infer("conv", [x], model_version="1", timeout=1)
    assert error.value.status() == "504" and "not computed" in error.value.message()
    after = client.get_inference_statistics("conv", "1")["model_stats"][0]
    assert after["execution_count"] == before["execution_count"]
    assert after["inference_stats"]["fail"]["count"] == \
        before["inference_stats"]["fail"]["count"] + 1
