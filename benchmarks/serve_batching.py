"""Throughput of `kiln serve` with the dynamic batcher off and on, at a fixed concurrency.

    python -m kiln.benchmarks.serve_batching [--requests 400] [--concurrency 8]
        [--image 16] [--delay-us 500] [--threads 1]

Writes a convolution with a symbolic batch dim (3 -> 8 channels, 3x3, on Bx3xHxH, H from
--image) as model.onnx into a temporary repository, and serves it twice with `kiln serve`
as a subprocess on loopback: once without batching (compiled for batch 1), once with
max_batch_size 8, preferred sizes 4 and 8 and the --delay-us queue delay. Each time,
--concurrency client threads send binary requests of one row on keep-alive connections
(closed loop) until --requests are answered, and it prints the throughput, p50/p99 and the
mean batch the server ran (from its kiln_batch_size metric).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .machine import cpu_summary

MAX_BATCH = 8
PREFERRED = [4, 8]


def conv_model(image: int):
    """The convolution, with the symbolic batch dim 'batch'."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, image, image])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8, image, image])],
        [numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) / 5).astype(np.float32),
                                 "w"),
         numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")])
    return helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


def serve(repo: Path, cache: Path, threads: int) -> tuple[subprocess.Popen, int]:
    """`kiln serve REPO` in a subprocess, once its model is ready; (process, port)."""
    import kiln

    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in (os.path.dirname(os.path.dirname(
                   kiln.__file__)), os.environ.get("PYTHONPATH", "")) if p))
    process = subprocess.Popen([sys.executable, "-m", "kiln", "serve", str(repo),
                                "--http-port", "0", "--threads", str(threads),
                                "--cache-dir", str(cache)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env)
    port, output = None, []
    for line in process.stdout:
        output.append(line)
        if "listening on http://" in line:
            port = int(line.rsplit(":", 1)[1])
        if "model(s) ready" in line:
            break
    if port is None or "1 of 1 model(s) ready" not in "".join(output):
        process.kill()
        raise RuntimeError("the server did not start:\n" + "".join(output))
    return process, port


def load(port: int, count: int, concurrency: int, image: int) -> tuple[float, list[float]]:
    """`count` requests from `concurrency` closed-loop clients; (seconds, latencies)."""
    x = np.random.default_rng(1).standard_normal((1, 3, image, image)).astype(np.float32)
    head = json.dumps({"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "parameters": {"binary_data_output": True}}).encode()
    body = head + x.tobytes()
    headers = {"Inference-Header-Content-Length": str(len(head)),
               "Content-Type": "application/octet-stream"}
    latencies: list[float] = []
    left = [count]
    lock = threading.Lock()
    failures: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                began = time.perf_counter()
                connection.request("POST", "/v2/models/conv/infer", body, headers)
                response = connection.getresponse()
                response.read()
                with lock:
                    latencies.append(time.perf_counter() - began)
                    if response.status != 200:
                        failures.append(str(response.status))
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"{len(failures)} request(s) failed: {failures[:5]}")
    return elapsed, latencies


def mean_batch(port: int) -> float | None:
    """The mean rows a batch, from the server's kiln_batch_size metric."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    total = re.search(r"^kiln_batch_size_sum\{[^}]*\} (\S+)$", text, re.M)
    count = re.search(r"^kiln_batch_size_count\{[^}]*\} (\S+)$", text, re.M)
    if not total or not count or not float(count.group(1)):
        return None
    return float(total.group(1)) / float(count.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--image", type=int, default=16, help="image height and width")
    parser.add_argument("--delay-us", type=float, default=500.0,
                        help="the batcher's max_queue_delay_us")
    parser.add_argument("--threads", type=int, default=1, help="the server's --threads")
    args = parser.parse_args(argv)
    import onnx

    configs = {"batching off": {"compile": {"dims": {"batch": 1}}},
               "batching on": {"max_batch_size": MAX_BATCH, "dynamic_batching": {
                   "max_queue_delay_us": args.delay_us, "preferred_batch_size": PREFERRED}}}
    print(f"{cpu_summary()}; --threads {args.threads}; {args.requests} requests of "
          f"1x3x{args.image}x{args.image}, concurrency {args.concurrency}, loopback, binary")
    with tempfile.TemporaryDirectory(prefix="kiln-serve-batch-") as folder:
        cache = Path(folder) / "cache"
        for name, config in configs.items():
            repo = Path(folder) / name.replace(" ", "-")
            (repo / "conv" / "1").mkdir(parents=True)
            onnx.save(conv_model(args.image), str(repo / "conv" / "1" / "model.onnx"))
            (repo / "conv" / "config.json").write_text(json.dumps(config))
            process, port = serve(repo, cache, args.threads)
            try:
                load(port, args.requests // 10, args.concurrency, args.image)   # warm-up
                elapsed, latencies = load(port, args.requests, args.concurrency, args.image)
                batch = mean_batch(port)
            finally:
                process.terminate()
                process.wait(30)
            p50, p99 = np.percentile(np.array(latencies) * 1e3, [50, 99])
            print(f"{name:13s} {args.requests / elapsed:7.0f} requests/s  p50 {p50:.2f} ms  "
                  f"p99 {p99:.2f} ms" + (f"  mean batch {batch:.2f} rows" if batch else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
