"""The Open Inference Protocol over gRPC (inference.GRPCInferenceService) against a running
`kiln serve`, through tritonclient.grpc and through plain protobuf messages (to send what
the client would not: typed contents, a wrong byte count): health, metadata, inference
matching ONNX Runtime (a CNN and BERT, raw and typed contents, every datatype), bad
requests each answered with its status code and the server unharmed, overload codes,
metrics and statistics shared with REST, and the drain on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import ml_dtypes
import numpy as np
import pytest

grpc = pytest.importorskip("grpc", reason="the gRPC endpoint needs grpcio")
grpcclient = pytest.importorskip("tritonclient.grpc", reason="the tests talk through it")

from kiln import zoo  # noqa: E402
from kiln.serve import grpc_messages  # noqa: E402
from kiln.serve.grpc_messages import METHODS, ModelInferRequest  # noqa: E402
from reference import assert_matches, assert_model_output, run_onnxruntime  # noqa: E402
from serve_helpers import add_model, metric, request  # noqa: E402
from serve_models import DTYPE_SHAPE, conv_model, dtype_feed  # noqa: E402
from test_serve_http import TRITON_TYPES, conv_input, dtype_reference  # noqa: E402

Code = grpc.StatusCode
SLOW_SHAPE = (256, 256)
#: calls in flight when the drain starts (the slow model runs for milliseconds each)
CALLS = 16


@pytest.fixture(scope="module")
def grpc_url(server) -> str:
    assert server.grpc_url, "the shared server has no gRPC listener"
    return server.grpc_url


@pytest.fixture(scope="module")
def triton(grpc_url):
    client = grpcclient.InferenceServerClient(grpc_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def channel(grpc_url):
    with grpc.insecure_channel(grpc_url) as opened:
        yield opened


def stub(channel, method: str):
    """A callable for one method of the service, with Kiln's own message classes."""
    request_class, response_class = METHODS[method]
    return channel.unary_unary(f"/inference.GRPCInferenceService/{method}",
                               request_serializer=request_class.SerializeToString,
                               response_deserializer=response_class.FromString)


def raw_request(model: str, feed: dict[str, np.ndarray], version: str = "",
                outputs: list[str] | None = None):
    """A ModelInferRequest with the inputs' bytes in raw_input_contents."""
    message = ModelInferRequest(model_name=model, model_version=version)
    for name, value in feed.items():
        message.inputs.add(name=name, datatype=TRITON_TYPES[value.dtype],
                           shape=list(value.shape))
        message.raw_input_contents.append(np.ascontiguousarray(value).tobytes())
    for name in outputs or []:
        message.outputs.add(name=name)
    return message


def outputs_of(response) -> dict[str, np.ndarray]:
    """A ModelInferResponse's outputs as arrays, from raw or typed contents."""
    arrays = {}
    for position, output in enumerate(response.outputs):
        dtype = {v: k for k, v in TRITON_TYPES.items()}[output.datatype]
        if response.raw_output_contents:
            flat = np.frombuffer(response.raw_output_contents[position], dtype)
        else:
            (_, values), = output.contents.ListFields()
            flat = np.array(values).astype(dtype)
        arrays[output.name] = flat.reshape(tuple(output.shape))
    return arrays


def status_of(call, message) -> tuple[grpc.StatusCode, str]:
    try:
        call(message, timeout=30)
    except grpc.RpcError as error:
        return error.code(), error.details()
    return Code.OK, ""


def test_descriptor_set_is_up_to_date(tmp_path):
    """inference.binpb is what protoc makes of inference.proto (regenerate it with the
    command in the .proto's header after an edit)."""
    protoc = pytest.importorskip("grpc_tools.protoc", reason="needs grpcio-tools")
    from importlib import resources

    from google.protobuf import descriptor_pb2

    folder = resources.files("kiln.serve")
    out = tmp_path / "inference.binpb"
    assert protoc.main(["protoc", f"-I{folder}", f"--descriptor_set_out={out}",
                        str(folder / grpc_messages.PROTO_FILE)]) == 0
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    committed = descriptor_pb2.FileDescriptorSet.FromString(
        folder.joinpath(grpc_messages.DESCRIPTOR_SET).read_bytes())
    assert fresh == committed, "serve/inference.binpb is stale: regenerate it (see " \
                               "serve/inference.proto's header)"


def test_messages_match_the_protocol_as_tritonclient_has_it():
    """Every field Kiln declares has the number, type and cardinality of tritonclient's
    copy of the protocol (what interoperability rests on), and every method the same
    request and response types."""
    from tritonclient.grpc import service_pb2

    def compare(ours, theirs, path: str) -> None:
        for field in ours.fields:
            other = theirs.fields_by_name.get(field.name)
            assert other is not None, f"{path}.{field.name} is not in the protocol"
            assert (field.number, field.type, field.is_repeated) == (
                other.number, other.type, other.is_repeated), f"{path}.{field.name}"
            if field.message_type is not None:
                compare(field.message_type, other.message_type, f"{path}.{field.name}")

    file = grpc_messages.POOL.FindFileByName(grpc_messages.PROTO_FILE)
    for name, message in file.message_types_by_name.items():
        compare(message, service_pb2.DESCRIPTOR.message_types_by_name[name], name)
    theirs = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    for method in grpc_messages.POOL.FindServiceByName(grpc_messages.SERVICE).methods:
        other = theirs.methods_by_name[method.name]
        assert (method.input_type.name, method.output_type.name) == (
            other.input_type.name, other.output_type.name), method.name


def test_health_and_metadata(triton, channel):
    assert triton.is_server_live() and triton.is_server_ready()
    metadata = triton.get_server_metadata()
    assert metadata.name == "kiln" and "statistics" in metadata.extensions
    conv = triton.get_model_metadata("conv", as_json=True)
    assert conv["versions"] == ["1", "2"] and conv["platform"] == "kiln"
    assert conv["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["1", "3", "16", "16"]}]
    bert = triton.get_model_metadata("bert")
    assert [(t.name, t.datatype, list(t.shape)) for t in bert.inputs] == [
        (name, "INT64", [1, 16]) for name in ("input_ids", "attention_mask", "token_type_ids")]
    assert triton.is_model_ready("conv") and triton.is_model_ready("conv", "2")
    assert not triton.is_model_ready("float8")   # loaded, but not servable: the reason is
    ready = stub(channel, "ModelReady")          # in the repository index
    assert status_of(ready, METHODS["ModelReady"][0](name="nope"))[0] == Code.NOT_FOUND
    assert status_of(ready, METHODS["ModelReady"][0](name="conv", version="9"))[0] == \
        Code.NOT_FOUND


def test_conv_matches_onnxruntime_through_tritonclient(triton):
    x = conv_input()
    (expected,) = run_onnxruntime(conv_model(), {"x": x})
    for version in ("", "1", "2"):
        tensor = grpcclient.InferInput("x", [1, 3, 16, 16], "FP32")
        tensor.set_data_from_numpy(x)
        result = triton.infer("conv", [tensor], model_version=version, request_id="r1")
        assert_model_output(result.as_numpy("y"), expected, what=f"conv {version or 'latest'}")
        assert result.get_response().id == "r1"
    assert result.get_response().model_version == "2"


def test_typed_contents_in_typed_contents_out(channel):
    """Inputs in the typed contents fields (fp32_contents, int64_contents) are answered in
    typed contents too: the conv model and BERT."""
    infer = stub(channel, "ModelInfer")
    x = conv_input(seed=2)
    message = ModelInferRequest(model_name="conv")
    message.inputs.add(name="x", datatype="FP32", shape=[1, 3, 16, 16]).contents \
        .fp32_contents.extend(x.reshape(-1).tolist())
    response = infer(message, timeout=30)
    assert not response.raw_output_contents
    (expected,) = run_onnxruntime(conv_model(), {"x": x})
    assert_model_output(outputs_of(response)["y"], expected, what="conv, typed contents")

    feed = bert_feed()
    message = ModelInferRequest(model_name="bert")
    for name, value in feed.items():
        message.inputs.add(name=name, datatype="INT64", shape=[1, 16]).contents \
            .int64_contents.extend(value.reshape(-1).tolist())
    (expected,) = run_onnxruntime(zoo.load("bert_small_random"), feed)
    assert_model_output(outputs_of(infer(message, timeout=30))["last_hidden_state"], expected,
                        what="bert, typed contents")

    message = ModelInferRequest(model_name="dtypes")   # FP16 has no typed field: raw only
    message.inputs.add(name="in_f16", datatype="FP16", shape=list(DTYPE_SHAPE)).contents \
        .fp32_contents.extend([1.0] * 6)
    code, details = status_of(infer, message)
    assert code == Code.INVALID_ARGUMENT and "FP16 values have no typed contents field" in \
        details and "raw_input_contents" in details, details


def bert_feed() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    mask = np.ones((1, 16), np.int64)
    mask[:, 12:] = 0
    return {"input_ids": rng.integers(0, 30522, (1, 16)).astype(np.int64),
            "attention_mask": mask,
            "token_type_ids": np.repeat([[0, 1]], 8, axis=1).astype(np.int64)}


def test_bert_matches_onnxruntime_through_tritonclient(triton):
    feed = bert_feed()
    inputs = []
    for name, value in feed.items():
        inputs.append(grpcclient.InferInput(name, [1, 16], "INT64"))
        inputs[-1].set_data_from_numpy(value)
    (expected,) = run_onnxruntime(zoo.load("bert_small_random"), feed)
    result = triton.infer("bert", inputs)
    assert_model_output(result.as_numpy("last_hidden_state"), expected, what="bert")


def test_every_datatype_round_trips_as_raw_contents(channel):
    feed = dtype_feed(seed=5)
    wanted = ["out_f64", "out_bf16", "out_i8", "out_b", "out_u64", "out_f16"]
    response = stub(channel, "ModelInfer")(raw_request("dtypes", feed, outputs=wanted),
                                           timeout=30)
    assert [o.name for o in response.outputs] == wanted   # the ones asked for, in order
    got = outputs_of(response)
    for name, expected in dtype_reference(feed).items():
        if name in wanted:
            actual = got[name]
            assert actual.dtype == expected.dtype and actual.shape == DTYPE_SHAPE, name
            assert_matches(actual.astype(np.float64) if expected.dtype == ml_dtypes.bfloat16
                           else actual, expected.astype(np.float64)
                           if expected.dtype == ml_dtypes.bfloat16 else expected, what=name)


def conv_message(**changes):
    """A ModelInferRequest for the conv model, raw, then changed: `name`, `datatype`,
    `shape`, `raw` (the bytes) or `model`/`version`."""
    x = conv_input()
    message = ModelInferRequest(model_name=changes.get("model", "conv"),
                                model_version=changes.get("version", ""))
    message.inputs.add(name=changes.get("name", "x"), datatype=changes.get("datatype", "FP32"),
                       shape=changes.get("shape", [1, 3, 16, 16]))
    message.raw_input_contents.append(changes.get("raw", x.tobytes()))
    return message


def typed_in(field: str):
    message = ModelInferRequest(model_name="conv")
    getattr(message.inputs.add(name="x", datatype="FP32", shape=[1, 3, 16, 16]).contents,
            field).extend([1] * 768)
    return message


def both_kinds():
    message = conv_message()
    message.inputs[0].contents.fp32_contents.extend([0.0] * 768)
    return message


def extra_raw():
    message = conv_message()
    message.raw_input_contents.append(b"\0" * 8)
    return message


def unknown_output():
    message = conv_message()
    message.outputs.add(name="z")
    return message


BAD_REQUESTS = {
    "wrong name": (lambda: conv_message(name="z"), Code.INVALID_ARGUMENT,
                   "unknown input 'z'; the model's inputs are: x (FP32 [1, 3, 16, 16])"),
    "wrong shape": (lambda: conv_message(shape=[1, 3, 16, 15], raw=b"\0" * 2880),
                    Code.INVALID_ARGUMENT, "expected shape [1, 3, 16, 16], got [1, 3, 16, 15]"),
    "wrong datatype": (lambda: conv_message(datatype="FP64", raw=b"\0" * 6144),
                       Code.INVALID_ARGUMENT, "expected datatype FP32, got \"FP64\""),
    "BYTES": (lambda: conv_message(datatype="BYTES", raw=b"abc"), Code.INVALID_ARGUMENT,
              "BYTES (strings) is not supported"),
    "raw size": (lambda: conv_message(raw=b"\0" * 100), Code.INVALID_ARGUMENT,
                 "raw_input_contents[0] has 100 bytes but shape [1, 3, 16, 16] of FP32 "
                 "takes 3072"),
    "raw count": (extra_raw, Code.INVALID_ARGUMENT,
                  "2 raw_input_contents entries for 1 inputs"),
    "raw and typed": (both_kinds, Code.INVALID_ARGUMENT, "in one of the two"),
    "typed field": (lambda: typed_in("int_contents"), Code.INVALID_ARGUMENT,
                    "FP32 values go in contents.fp32_contents, not in contents.int_contents"),
    "no inputs": (lambda: ModelInferRequest(model_name="conv"), Code.INVALID_ARGUMENT,
                  "missing input(s): 'x'"),
    "unknown output": (unknown_output, Code.INVALID_ARGUMENT, "unknown output 'z'"),
    "over --max-body-mb": (lambda: conv_message(raw=b"\0" * (2 << 20)),
                           Code.RESOURCE_EXHAUSTED, "larger than max"),
    "unknown model": (lambda: conv_message(model="nope"), Code.NOT_FOUND,
                      "unknown model 'nope'; the repository has: "),
    "unknown version": (lambda: conv_message(version="7"), Code.NOT_FOUND,
                        "model 'conv' has no version '7'; its versions are: 1, 2"),
    "not ready": (lambda: conv_message(model="float8"), Code.UNAVAILABLE,
                  "model 'float8' is not ready"),
}


def test_bad_requests_get_their_status_code_and_the_server_serves_on(server, channel):
    infer = stub(channel, "ModelInfer")
    live = stub(channel, "ServerLive")
    before = metric(server.url, "kiln_inference_requests_total", model="conv", version="2",
                    outcome="invalid")
    for case, (make, code, text) in BAD_REQUESTS.items():
        got, details = status_of(infer, make())
        assert (got, text in details) == (code, True), f"{case}: {got} {details!r}"
        assert live(METHODS["ServerLive"][0](), timeout=10).live, case
    assert status_of(infer, conv_message())[0] == Code.OK
    invalid = sum(1 for make, code, _ in BAD_REQUESTS.values()
                  if code == Code.INVALID_ARGUMENT)
    assert metric(server.url, "kiln_inference_requests_total", model="conv", version="2",
                  outcome="invalid") - before == invalid


def test_metrics_and_statistics_count_grpc_requests(server, triton, client):
    labels = {"model": "conv", "version": "1"}
    before = metric(server.url, "kiln_inference_requests_total", outcome="success", **labels)
    stats_before = triton.get_inference_statistics("conv", "1").model_stats[0]
    tensor = grpcclient.InferInput("x", [1, 3, 16, 16], "FP32")
    tensor.set_data_from_numpy(conv_input())
    for _ in range(3):
        triton.infer("conv", [tensor], model_version="1")
    assert metric(server.url, "kiln_inference_requests_total", outcome="success",
                  **labels) - before == 3
    stats = triton.get_inference_statistics("conv", "1").model_stats[0]
    assert stats.inference_count - stats_before.inference_count == 3
    assert stats.inference_stats.success.count - stats_before.inference_stats.success.count == 3
    rest = client.get_inference_statistics("conv", "1")["model_stats"][0]   # the same counts
    assert rest["inference_count"] >= stats.inference_count
    index = {(m.name, m.version): m for m in triton.get_model_repository_index().models}
    assert index[("conv", "2")].state == "READY"
    assert index[("float8", "1")].state == "UNAVAILABLE" and index[("float8", "1")].reason
    ready = triton.get_model_repository_index(as_json=True)
    assert all(m["state"] == "READY" for m in ready["models"] if m["name"] == "conv")
    with pytest.raises(grpcclient.InferenceServerException) as error:
        triton.get_inference_statistics("conv", "7")
    assert error.value.status() == "StatusCode.NOT_FOUND"


async def burst(url: str, model: str, count: int, probes: int = 0
                ) -> tuple[list[grpc.StatusCode], list, list[float]]:
    """`count` ModelInfer calls to `model` at once on one channel, and `probes` ServerLive
    calls meanwhile: the codes, the trailing metadata of each, and each probe's seconds."""
    x = np.random.default_rng(0).standard_normal(SLOW_SHAPE).astype(np.float32)
    async with grpc.aio.insecure_channel(url) as opened:
        infer = stub(opened, "ModelInfer")
        live = stub(opened, "ServerLive")
        await live(METHODS["ServerLive"][0](), timeout=10)

        async def one():
            call = infer(raw_request(model, {"x": x}), timeout=60)
            try:
                await call
            except grpc.aio.AioRpcError:
                pass
            return await call.code(), await call.trailing_metadata()

        async def probe() -> list[float]:
            seconds = []
            for _ in range(probes):
                began = time.perf_counter()
                assert (await live(METHODS["ServerLive"][0](), timeout=10)).live
                seconds.append(time.perf_counter() - began)
                await asyncio.sleep(0.005)
            return seconds

        results, probe_times = await asyncio.gather(
            asyncio.gather(*(one() for _ in range(count))), probe())
    return [code for code, _ in results], [meta for _, meta in results], probe_times


def test_a_full_queue_is_unavailable_and_a_queue_timeout_is_deadline_exceeded(grpc_url):
    """Model "slow" (queue of one): of 10 calls at once, the ones that find the queue full
    are UNAVAILABLE with a retry-after; model "slowq" (20 ms queue timeout): the ones still
    queued then are DEADLINE_EXCEEDED. Liveness answers promptly meanwhile."""
    codes, trailers, _ = asyncio.run(burst(grpc_url, "slow", 10))
    assert set(codes) == {Code.OK, Code.UNAVAILABLE}, codes
    for code, trailer in zip(codes, trailers):
        if code == Code.UNAVAILABLE:
            assert int(dict(trailer)["retry-after"]) >= 1
    codes, _, probes = asyncio.run(burst(grpc_url, "slowq", 16, probes=10))
    assert set(codes) == {Code.OK, Code.DEADLINE_EXCEEDED}, codes
    assert max(probes) < 0.5, probes


def test_sigterm_drains_grpc_requests(artifacts, tmp_path):
    """`kiln serve` as a process: calls in flight when SIGTERM comes are all answered; a
    call after it is UNAVAILABLE (retry on another replica), ServerReady turns false, and
    the process exits 0."""
    from serve_helpers import ServerProcess

    add_model(tmp_path, "slow", artifacts["slow"],
              config={"max_queue_size": 64, "threads_per_instance": 1})
    server = ServerProcess(str(tmp_path), "--threads", "1", "--grace-period", "30")
    ready_request = METHODS["ServerReady"][0]()

    async def scenario() -> tuple[list, grpc.StatusCode, str]:
        x = np.random.default_rng(0).standard_normal(SLOW_SHAPE).astype(np.float32)
        async with grpc.aio.insecure_channel(url) as opened:
            infer = stub(opened, "ModelInfer")
            ready = stub(opened, "ServerReady")
            calls = [infer(raw_request("slow", {"x": x}), timeout=60) for _ in range(CALLS)]
            end = time.monotonic() + 30   # until every call is answered or in the server
            while metric(server.url, "kiln_requests_in_flight") + metric(
                    server.url, "kiln_inference_requests_total", model="slow",
                    version="1", outcome="success") < CALLS:
                assert time.monotonic() < end, "the requests never arrived"
                await asyncio.sleep(0.002)
            assert metric(server.url, "kiln_requests_in_flight") > 0, "nothing to drain"
            server.process.send_signal(signal.SIGTERM)
            while (await ready(ready_request, timeout=10)).ready:
                assert time.monotonic() < end, "still ready after SIGTERM"
                await asyncio.sleep(0.001)
            late = infer(raw_request("slow", {"x": x}), timeout=10)
            codes = []
            for call in [late] + calls:
                try:
                    await call
                except grpc.aio.AioRpcError:
                    pass
                codes.append(await call.code())
            return codes[1:], codes[0], await late.details()

    try:
        server.wait_for("1 of 1 model(s) ready")
        (line,) = [line for line in server.output if "listening on grpc://" in line]
        url = line.split("grpc://", 1)[1].split()[0]
        codes, late_code, late_details = asyncio.run(scenario())
        assert codes == [Code.OK] * CALLS, codes
        assert late_code == Code.UNAVAILABLE and "shutting down" in late_details
        assert server.process.wait(30) == 0
        server.wait_for("kiln serve: stopped")
    finally:
        server.close()


def test_a_taken_grpc_port_is_a_clear_error(server):
    from kiln.serve.errors import ConfigError
    from kiln.serve.grpc_service import create_server

    async def bind() -> None:
        create_server(server.server.app, "127.0.0.1", server.server.grpc_port, 1 << 20)

    with pytest.raises(ConfigError, match="cannot listen for gRPC on 127.0.0.1:.*--grpc-port"):
        asyncio.run(bind())


def test_grpc_without_grpcio_names_the_pip_command(tmp_path, capsys, monkeypatch):
    from kiln.cli import main

    monkeypatch.setitem(sys.modules, "grpc", None)   # as if it were not installed
    assert main(["serve", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "kiln serve needs grpcio" in error and "--grpc-port -1" in error


def test_rest_and_grpc_answer_alike(server, triton):
    """The same input through REST and gRPC: the same output, bit for bit."""
    x = conv_input(seed=9)
    head = ('{"inputs":[{"name":"x","shape":[1,3,16,16],"datatype":"FP32",'
            '"parameters":{"binary_data_size":3072}}],'
            '"parameters":{"binary_data_output":true}}').encode()
    status, headers, body = request(server.url, "POST", "/v2/models/conv/infer",
                                    head + x.tobytes(),
                                    {"Inference-Header-Content-Length": str(len(head))})
    assert status == 200
    rest = np.frombuffer(body[int(headers["inference-header-content-length"]):], np.float32)
    tensor = grpcclient.InferInput("x", [1, 3, 16, 16], "FP32")
    tensor.set_data_from_numpy(x)
    np.testing.assert_array_equal(triton.infer("conv", [tensor]).as_numpy("y").reshape(-1),
                                  rest)
