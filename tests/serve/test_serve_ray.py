"""Ray Serve (deploy/ray/kiln_ray.py) on a local Ray instance on loopback: two replicas of a
compiled model answer through a DeploymentHandle and through Ray's HTTP proxy (the Open
Inference Protocol's infer request), matching ONNX Runtime; Ray's autoscaler scaling two
replicas down to one while requests flow loses none of them. Ray Serve is in the test
extra: in CI (KILN_CI) these tests run; elsewhere they skip where it is not installed."""

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

from downloads import in_ci

if in_ci():   # the test extra installs Ray Serve: a missing one fails here
    import ray
    from ray import serve
else:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ray[serve]', "
                                            "or the test extra)")
    serve = pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install "
                                                    "'ray[serve]')")

from reference import assert_model_output, run_onnxruntime  # noqa: E402
from serve_helpers import kiln_pythonpath, request  # noqa: E402
from serve_models import conv_model  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "ray" / "kiln_ray.py"
#: the most requests the load sends (it stops once the scale-down is done, or at this)
MAX_REQUESTS = 20_000


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


def replica_states() -> dict[str, int]:
    """The deployment's replicas by state (RUNNING, STOPPING, ...)."""
    deployments = serve.status().applications["kiln"].deployments
    return dict(deployments["KilnModel"].replica_states)


def test_the_autoscaler_scaling_down_under_load_loses_no_request(kiln_ray, artifacts):
    """Two replicas (initial_replicas 2, min 1) under load from two threads, far below
    target_ongoing_requests: Ray's autoscaler scales down to one within a few seconds, and
    stops the other gracefully (no new requests to it, its own ones finished). Every
    request is answered, and requests flowed while it happened."""
    module, _ = kiln_ray
    scaling = {"initial_replicas": 2, "target_ongoing_requests": 16,
               "downscale_delay_s": 3.0, "upscale_delay_s": 60.0}
    serve.delete("kiln")   # a fresh deployment starts at initial_replicas
    handle = serve.run(module.application(str(artifacts["conv"]), "conv", threads=1,
                                          min_replicas=1, max_replicas=2,
                                          autoscaling=scaling),
                       name="kiln", route_prefix="/")
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
            time.sleep(0.002)   # a light load: the autoscaler wants one replica for it

    workers = [threading.Thread(target=load) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        assert replica_states().get("RUNNING") == 2, replica_states()
        before = sent[0]
        end = time.monotonic() + 40
        while replica_states() != {"RUNNING": 1}:
            assert time.monotonic() < end, f"no scale-down: {replica_states()}"
            time.sleep(0.2)
        during = sent[0] - before
        time.sleep(0.5)   # requests go on to the one replica left
    finally:
        stop.set()
        for worker in workers:
            worker.join(120)
    assert failures == [], failures[:3]
    assert 0 < during and sent[0] < MAX_REQUESTS, (before, during, sent[0])
