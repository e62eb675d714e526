"""Helpers of the server tests: plain HTTP requests (http.client: nothing between the test
and the bytes on the wire), a reader of the Prometheus metrics, the slow model's request,
the building of model repositories, the choice of JSON codec, and `kiln serve` run as a
process of its own."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import kiln

#: kiln serve's JSON codecs: orjson (the test extra installs it), the standard module alone
CODECS = ("orjson", "json")


@contextlib.contextmanager
def json_codec(name: str):
    """kiln serve's JSON codec (in this process: the servers the tests start in it too) set
    to `name`, one of CODECS, for the block."""
    from kiln.serve import jsoncodec

    installed = jsoncodec.orjson
    if name == "orjson" and installed is None:
        pytest.skip("orjson is not installed (the test extra installs it)")
    jsoncodec.orjson = installed if name == "orjson" else None
    try:
        yield
    finally:
        jsoncodec.orjson = installed


def request(url: str, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 30.0
            ) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection; (status, lower-cased headers, body)."""
    host, port = url.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read())
    finally:
        connection.close()


def post_json(url: str, path: str, obj) -> tuple[int, dict[str, str], dict]:
    status, headers, body = request(url, "POST", path, json.dumps(obj).encode(),
                                    {"Content-Type": "application/json"})
    return status, headers, json.loads(body)


def metric(url: str, name: str, **labels: str) -> float:
    """The value of one sample of the server's /metrics (0 if absent)."""
    status, _, body = request(url, "GET", "/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, _, value = line.rpartition(" ")
        metric_name, _, label_text = sample.partition("{")
        if metric_name != name:
            continue
        found = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if part)
        if all(found.get(k) == json.dumps(v) for k, v in labels.items()):
            return float(value)
    return 0.0


SLOW_SHAPE = (256, 256)


def slow_body() -> tuple[bytes, dict[str, str]]:
    x = np.random.default_rng(0).standard_normal(SLOW_SHAPE).astype(np.float32)
    head = json.dumps({"inputs": [{"name": "x", "shape": list(SLOW_SHAPE), "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "parameters": {"binary_data_output": True}}).encode()
    return head + x.tobytes(), {"Inference-Header-Content-Length": str(len(head))}


def add_model(repo: Path, name: str, artifact: Path, versions=(1,), config: dict | None = None,
              raw_config: str | None = None) -> Path:
    """Put `artifact` into repo/name/<version>/ (as model.so or model.onnx) for each
    version, with a config.json (an object, or raw text) when given."""
    for version in versions:
        folder = repo / name / str(version)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(artifact, folder / f"model{artifact.suffix}")
    if config is not None:
        (repo / name / "config.json").write_text(json.dumps(config))
    if raw_config is not None:
        (repo / name / "config.json").write_text(raw_config)
    return repo / name


def kiln_pythonpath() -> str:
    """PYTHONPATH for a subprocess that must import the kiln this process imported."""
    parent = os.path.dirname(os.path.dirname(kiln.__file__))
    return os.pathsep.join(p for p in [parent, os.environ.get("PYTHONPATH", "")] if p)


def binary_body(name: str, x: np.ndarray, **parameters) -> tuple[bytes, dict[str, str]]:
    """An inference request of one FP32 input as binary tensor data, outputs binary too
    (and the request `parameters` given, e.g. timeout=1000)."""
    head = json.dumps({"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "parameters": {"binary_data_output": True, **parameters}}).encode()
    return head + x.tobytes(), {"Inference-Header-Content-Length": str(len(head)),
                                "Content-Type": "application/octet-stream"}


def binary_answer(headers: dict[str, str], body: bytes) -> tuple[dict, np.ndarray]:
    """The response object and its first output (FP32) of a binary inference answer."""
    length = int(headers["inference-header-content-length"])
    response = json.loads(body[:length])
    output = response["outputs"][0]
    return response, np.frombuffer(body[length:], np.float32).reshape(output["shape"])


class Connection:
    """One keep-alive loopback connection (http.client) for a client thread."""

    def __init__(self, url: str, timeout: float = 30.0):
        host, port = url.rsplit(":", 1)
        self._connection = http.client.HTTPConnection(host, int(port), timeout=timeout)

    def post(self, path: str, body: bytes, headers: dict[str, str]
             ) -> tuple[int, dict[str, str], bytes]:
        self._connection.request("POST", path, body=body, headers=headers)
        response = self._connection.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read())

    def close(self) -> None:
        self._connection.close()


class ServerProcess:
    """`python -m kiln serve REPO --http-port 0 ...` with its output read line by line."""

    def __init__(self, *args: str):
        env = dict(os.environ, PYTHONPATH=kiln_pythonpath(), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kiln", "serve", *args, "--http-port", "0",
             "--grpc-port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait_for("listening on http://")
        self.url = line.rsplit("http://", 1)[1].strip()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} from the server; it wrote:\n"
                             + "".join(self.output))

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
