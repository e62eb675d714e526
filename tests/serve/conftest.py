"""Fixtures of the server tests: the test models compiled once per session, a model
repository of them with broken entries beside the good ones, and one server on loopback
serving it (in this process, on a free port) for the tests that do not need their own."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="kiln serve needs the serve extra")
pytest.importorskip("prometheus_client", reason="kiln serve needs the serve extra")
pytest.importorskip("tritonclient.http", reason="the tests talk to the server through it")

import kiln  # noqa: E402
from kiln import zoo  # noqa: E402
from serve_helpers import add_model  # noqa: E402
from serve_models import conv_model, dtypes_model, float8_model, slow_model  # noqa: E402

#: small enough that the oversized-body test sends a real body over it
MAX_BODY_BYTES = 1 << 20
BERT_DIMS = {"batch": 1, "seq": 16}


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    """name -> compiled model.so, and "conv.onnx" -> the conv model's ONNX file."""
    folder = tmp_path_factory.mktemp("artifacts")
    built = {}
    for name, model, dims in [("conv", conv_model(), None), ("dtypes", dtypes_model(), None),
                              ("slow", slow_model(), None), ("float8", float8_model(), None),
                              ("bert", zoo.load("bert_small_random"), BERT_DIMS)]:
        (folder / name).mkdir()
        built[name] = Path(kiln.compile(model, output=str(folder / name / "model.so"),
                                        dims=dims))
    import onnx

    onnx.save(conv_model(), str(folder / "conv.onnx"))
    built["conv.onnx"] = folder / "conv.onnx"
    return built


@pytest.fixture(scope="session")
def repo(artifacts, tmp_path_factory) -> Path:
    """The shared server's repository: models that serve, and broken ones that must not
    stop them."""
    root = tmp_path_factory.mktemp("repo")
    single = {"threads_per_instance": 1}
    add_model(root, "conv", artifacts["conv"], versions=(1, 2),
              config={"version_policy": {"all": {}}, **single})
    add_model(root, "bert", artifacts["bert"], config=single)
    add_model(root, "dtypes", artifacts["dtypes"], config=single)
    add_model(root, "spare", artifacts["conv"], config=single)
    add_model(root, "onnxconv", artifacts["conv.onnx"], config=single)
    add_model(root, "slow", artifacts["slow"], config={"max_queue_size": 1, **single})
    add_model(root, "slowq", artifacts["slow"],
              config={"max_queue_size": 16, "default_timeout_ms": 20, **single})
    add_model(root, "misspelt", artifacts["conv"], config={"max_queue_sise": 4})
    add_model(root, "badjson", artifacts["conv"], raw_config='{"instances": 1,}')
    add_model(root, "float8", artifacts["float8"], config=single)
    (root / "noartifact" / "1").mkdir(parents=True)
    return root


@pytest.fixture(scope="session")
def server(repo):
    """The shared server: in this process, on free loopback ports (REST, and gRPC where
    grpcio is installed), 8 runtime threads."""
    import importlib.util

    from kiln.serve.server import BackgroundServer, ServeOptions

    grpc_port = 0 if importlib.util.find_spec("grpc") is not None else None
    options = ServeOptions(host="127.0.0.1", http_port=0, grpc_port=grpc_port, threads=8,
                           max_body_bytes=MAX_BODY_BYTES)
    with BackgroundServer(repo, options) as background:
        yield background


@pytest.fixture(scope="session")
def client(server):
    import tritonclient.http as httpclient

    triton = httpclient.InferenceServerClient(server.url, connection_timeout=30,
                                              network_timeout=60)
    yield triton
    triton.close()
