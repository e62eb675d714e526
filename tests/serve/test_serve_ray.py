"""Ray Serve (deploy/ray/kiln_ray.py) on a local Ray instance on loopback: two replicas of a
compiled model answer through a DeploymentHandle and through Ray's HTTP proxy (the Open
Inference Protocol's infer request), matching ONNX Runtime; scaling down to one replica
while requests flow loses none of them. Skipped where Ray Serve is not installed: it is not
in the test extra (ray's wheel alone is 80 MB, with some 30 more packages)."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ray[serve]'; "
                                        "not in the test extra: it weighs 80 MB and more)")
serve = pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install "
                                                "'ray[serve]')")

from reference import assert_model_output, run_onnxruntime  # noqa: E402
from serve_helpers import kiln_pythonpath, request  # noqa: E402
from serve_models import conv_model  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "ray" / "kiln_ray.py"
#: the most requests the load sends (it stops once the scale-down is done, or at this)
MAX_REQUESTS = 5000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def kiln_ray():
    """The example module, and a local Ray on loopback (2 CPUs) with Serve's HTTP proxy on a
    free loopback port."""
    spec = importlib.util.spec_from_file_location("kiln_ray", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # the replicas (Ray's worker processes) import kiln and the example as this process does
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(EXAMPLE.parent), kiln_pythonpath()])
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False,
             log_to_driver=False)
    port = free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield module, port
    finally:
        serve.shutdown()
        ray.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def test_two_replicas_serve_the_model(kiln_ray, artifacts):
    module, port = kiln_ray
    handle = serve.run(module.application(str(artifacts["conv"]), "conv", threads=1,
                                          min_replicas=2, max_replicas=2),
                       name="kiln", route_prefix="/")
    x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype(np.float32)
    (expected,) = run_onnxruntime(conv_model(), {"x": x})
    assert_model_output(handle.infer.remote({"x": x}).result()["y"], expected,
                        what="through the handle")
    pids = {handle.replica.remote().result()["pid"] for _ in range(40)}
    assert len(pids) == 2, pids
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 3, 16, 16], "datatype": "FP32",
                                   "data": x.reshape(-1).tolist()}]}).encode()
    status, _, reply = request(f"127.0.0.1:{port}", "POST", "/v2/models/conv/infer", body,
                               {"Content-Type": "application/json"})
    assert status == 200, reply
    (output,) = json.loads(reply)["outputs"]
    assert_model_output(np.array(output["data"], np.float32).reshape(output["shape"]),
                        expected, what="through Ray's HTTP proxy")
    status, _, reply = request(f"127.0.0.1:{port}", "POST", "/v2/models/conv/infer",
                               b'{"inputs": [{"name": "z"}]}')
    assert status == 400 and "unknown input 'z'" in json.loads(reply)["error"]


def test_stopping_a_replica_under_load_loses_no_request(kiln_ray, artifacts):
    """Two replicas under load from four threads; the app is scaled down to one: Ray stops
    the other gracefully, and every request is answered."""
    module, _ = kiln_ray
    artifact = str(artifacts["conv"])
    handle = serve.run(module.application(artifact, "conv", threads=1, min_replicas=2,
                                          max_replicas=2), name="kiln", route_prefix="/")
    x = np.zeros((1, 3, 16, 16), np.float32)
    sent, failures, lock = [0], [], threading.Lock()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            with lock:
                if sent[0] >= MAX_REQUESTS:
                    return
                sent[0] += 1
            try:
                handle.infer.remote({"x": x}).result(timeout_s=60)
            except Exception as exc:   # what the test counts: any request not answered
                failures.append(repr(exc))

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.5)
        before = sent[0]
        serve.run(module.application(artifact, "conv", threads=1, min_replicas=1,
                                     max_replicas=1), name="kiln", route_prefix="/")
        end = time.monotonic() + 60
        while len({handle.replica.remote().result()["pid"] for _ in range(20)}) > 1:
            assert time.monotonic() < end, "the second replica never stopped"
            time.sleep(0.2)
        during = sent[0] - before
    finally:
        stop.set()
        for worker in workers:
            worker.join(120)
    assert failures == [], failures[:3]
    assert 0 < during and sent[0] < MAX_REQUESTS, (before, during, sent[0])
