"""Latency of one request through `kiln serve` against the same model run in process.

    python -m kiln.benchmarks.serve_latency [--requests 500] [--threads 1]

Compiles a small convolution (3 -> 8 channels, 3x3, on 1x3x16x16) into a temporary folder,
starts `kiln serve` on it as a subprocess on a free loopback port, and sends requests one
after another on one keep-alive connection (closed loop, concurrency 1): binary tensor data,
then JSON, then (where grpcio is installed) gRPC ModelInfer with raw_input_contents on one
channel. Prints p50/p90/p99 of each beside `session.run` in this process with the same
thread count: the difference is what the server adds (HTTP or gRPC, parsing, the queue
hand-off).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .machine import cpu_summary


def conv_model():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])],
        [numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) / 5).astype(np.float32),
                                 "w"),
         numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")])
    return helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


def percentiles(seconds: list[float]) -> str:
    p50, p90, p99 = np.percentile(np.array(seconds) * 1e3, [50, 90, 99])
    return f"p50 {p50:.3f} ms  p90 {p90:.3f} ms  p99 {p99:.3f} ms"


def timed_requests(port: int, body: bytes, headers: dict[str, str], count: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    try:
        for i in range(count + count // 10):   # the first tenth warms up, uncounted
            began = time.perf_counter()
            connection.request("POST", "/v2/models/model/infer", body, headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"the server answered {response.status}")
            if i >= count // 10:
                times.append(time.perf_counter() - began)
    finally:
        connection.close()
    return times


def timed_grpc_requests(port: int, x: np.ndarray, count: int) -> list[float]:
    """ModelInfer calls one after another on one channel, with Kiln's own message classes
    (nothing between the loop and the wire but grpcio)."""
    import grpc

    from kiln.serve.grpc_messages import METHODS, ModelInferRequest

    request = ModelInferRequest(model_name="model")
    request.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    _, response_class = METHODS["ModelInfer"]
    times = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                    request_serializer=ModelInferRequest.SerializeToString,
                                    response_deserializer=response_class.FromString)
        for i in range(count + count // 10):   # the first tenth warms up, uncounted
            began = time.perf_counter()
            infer(request, timeout=30)
            if i >= count // 10:
                times.append(time.perf_counter() - began)
    return times


def start_server(library: Path, threads: int, grpc: bool
                 ) -> tuple[subprocess.Popen, int, int | None]:
    import kiln

    # the subprocess imports the kiln this process imported
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in (os.path.dirname(os.path.dirname(
                   kiln.__file__)), os.environ.get("PYTHONPATH", "")) if p))
    process = subprocess.Popen([sys.executable, "-m", "kiln", "serve", str(library),
                                "--http-port", "0", "--threads", str(threads),
                                "--grpc-port", "0" if grpc else "-1"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env)
    port = grpc_port = None
    for line in process.stdout:
        if "listening on http://" in line:
            port = int(line.rsplit(":", 1)[1])
        if "listening on grpc://" in line:
            grpc_port = int(line.split()[-2].rsplit(":", 1)[1])
        if "model(s) ready" in line:
            break
    if port is None:
        process.kill()
        raise RuntimeError("the server did not start")
    return process, port, grpc_port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1,
                        help="runtime threads, in process and in the server")
    args = parser.parse_args(argv)
    import kiln
    from kiln.runtime import load

    with tempfile.TemporaryDirectory(prefix="kiln-serve-bench-") as folder:
        library = Path(kiln.compile(conv_model(), output=str(Path(folder) / "model.so")))
        x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
        with load(library, threads=args.threads) as session:
            for _ in range(args.requests // 10):
                session.run({"x": x})
            local = []
            for _ in range(args.requests):
                began = time.perf_counter()
                session.run({"x": x})
                local.append(time.perf_counter() - began)
        head = json.dumps({"inputs": [{"name": "x", "shape": [1, 3, 16, 16], "datatype": "FP32",
                                       "parameters": {"binary_data_size": x.nbytes}}],
                           "parameters": {"binary_data_output": True}}).encode()
        binary = (head + x.tobytes(), {"Inference-Header-Content-Length": str(len(head)),
                                       "Content-Type": "application/octet-stream"})
        plain = (json.dumps({"inputs": [{"name": "x", "shape": [1, 3, 16, 16],
                                         "datatype": "FP32",
                                         "data": x.reshape(-1).tolist()}]}).encode(),
                 {"Content-Type": "application/json"})
        import importlib.util

        with_grpc = importlib.util.find_spec("grpc") is not None
        process, port, grpc_port = start_server(library, args.threads, with_grpc)
        try:
            served_binary = timed_requests(port, *binary, args.requests)
            served_json = timed_requests(port, *plain, args.requests)
            served_grpc = timed_grpc_requests(grpc_port, x, args.requests) if with_grpc \
                else None
        finally:
            process.terminate()
            process.wait(30)
    print(f"{cpu_summary()}; {args.threads} runtime thread(s), {args.requests} requests each, "
          f"concurrency 1, loopback")
    print(f"in process session.run:    {percentiles(local)}")
    print(f"kiln serve, binary tensors: {percentiles(served_binary)}")
    print(f"kiln serve, JSON tensors:   {percentiles(served_json)}")
    if served_grpc is not None:
        print(f"kiln serve, gRPC raw:       {percentiles(served_grpc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
