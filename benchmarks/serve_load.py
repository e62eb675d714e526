"""Load on `kiln serve` beside its peers: a closed-loop concurrency sweep, then open-loop
Poisson arrivals at fixed fractions of each server's measured peak.

    python -m kiln.benchmarks.serve_load [--models resnet18,bert_small_random]
        [--duration 5] [--threads 1] [--server-cpus 0] [--client-cpus 1]
        [--peers inprocess,kiln,fastapi,kserve] [--kserve-python PATH]
        [--c1-only] [--baseline PATH]

For each model (from kiln.zoo; BERT at batch 1, sequence 16), on the same thread budget
(--threads runtime threads for Kiln, intra-op threads for ONNX Runtime) and the same CPUs:

- inprocess: ONNX Runtime's and Kiln's session.run in this process, one after another
  (the floor: no server at all);
- kiln: `kiln serve` on the compiled model.so;
- fastapi: ONNX Runtime behind a small FastAPI/uvicorn server speaking the same protocol
  (benchmarks/serve_load_peers.py);
- kserve: ONNX Runtime inside KServe's own ModelServer, where the kserve package imports
  (in this Python, or in --kserve-python's); otherwise the report says it was skipped.

Every server process is pinned to --server-cpus (os.sched_setaffinity before exec), the
load generator (this process) to --client-cpus; the in-process floor runs on the server
CPUs. The load generator is one asyncio loop speaking HTTP/1.1 over raw keep-alive
sockets (a request's bytes are built once), so that it costs little; its own CPU time
(time.process_time, over the wall time of each point) is printed beside each point.

Closed loop: 1, 2, 4, 8, 16, 32 connections, each sending its next request when the last
is answered, for --duration seconds each (binary tensor data; at concurrency 1 JSON too).
The peak is the best throughput of the sweep. Open loop: Poisson arrivals at 50, 80, 100,
150 and 200% of that peak for --duration seconds each; a request's latency runs from its
*scheduled* send time, so a request the generator sends late still counts the wait (no
coordinated omission). Each point prints p50/p90/p99, throughput and errors (non-200
answers by status, and failed connections). The in-process runs are measured again after
the servers (the lower p50 is the floor), and beside the measured p99/p50 at 80% of peak
stands that of an ideal server (ideal_queue): Poisson arrivals alone make it well above 1.
Last, the memory of `kiln serve`: its RSS with one instance, with two instances, and with
a second version of the model.

--c1-only measures concurrency 1 alone (binary and JSON; no open loop, no memory): what a
request costs a server over its runtime's in-process run, in a minute or two. Its servers
run at once and are measured in turns with the in-process runs (ten turns of a tenth of
--duration each), so that on a shared machine a neighbour's burst falls on all of them
alike. --baseline names another Kiln checkout (the folder holding its `kiln` package): its
`kiln serve` runs beside this one's, on the same model.so, floor and CPUs, for a
before/after comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .machine import cpu_summary

CONCURRENCY = (1, 2, 4, 8, 16, 32)
RATES = (0.5, 0.8, 1.0, 1.5, 2.0)
MODELS = ("resnet18", "bert_small_random")
BERT_SEQ = 16
REQUEST_TIMEOUT_S = 30.0


# -- the models and their requests -------------------------------------------------------

def model_inputs(name: str) -> dict[str, np.ndarray]:
    """One request's inputs (batch 1) of zoo model `name`."""
    rng = np.random.default_rng(0)
    if name.startswith("bert"):
        return {"input_ids": rng.integers(0, 1000, (1, BERT_SEQ)).astype(np.int64),
                "attention_mask": np.ones((1, BERT_SEQ), np.int64),
                "token_type_ids": np.zeros((1, BERT_SEQ), np.int64)}
    return {"input": rng.standard_normal((1, 3, 224, 224)).astype(np.float32)}


def fixed_onnx(name: str, feed: dict[str, np.ndarray], path: Path) -> Path:
    """Zoo model `name` with its symbolic dims fixed to the shapes of `feed` (so ONNX
    Runtime plans the same static shapes Kiln compiles), saved at `path`."""
    import onnx

    from kiln import zoo

    model = zoo.load(name)
    shapes = {n: a.shape for n, a in feed.items()}
    for value in model.graph.input:
        if value.name in shapes:
            for dim, size in zip(value.type.tensor_type.shape.dim, shapes[value.name]):
                dim.ClearField("dim_param")
                dim.dim_value = size
    for value in model.graph.output:   # inferred again by both runtimes
        value.type.tensor_type.ClearField("shape")
    onnx.save(model, str(path))
    return path


_DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}


def request_bytes(model: str, feed: dict[str, np.ndarray], binary: bool) -> bytes:
    """The whole HTTP/1.1 request of one inference on `model` (binary tensor data in and
    out, or JSON in and out)."""
    inputs = []
    for name, array in feed.items():
        tensor = {"name": name, "shape": list(array.shape), "datatype": _DATATYPES[array.dtype]}
        if binary:
            tensor["parameters"] = {"binary_data_size": array.nbytes}
        else:
            tensor["data"] = array.reshape(-1).tolist()
        inputs.append(tensor)
    head = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": binary}}).encode()
    if binary:
        body = head + b"".join(a.tobytes() for a in feed.values())
        headers = (f"Content-Type: application/octet-stream\r\n"
                   f"Inference-Header-Content-Length: {len(head)}\r\n")
    else:
        body, headers = head, "Content-Type: application/json\r\n"
    return (f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


# -- the load generator ------------------------------------------------------------------

class Connection:
    """One keep-alive HTTP/1.1 connection: send a prepared request, read the answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> "Connection":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def send(self, request: bytes) -> int:
        """The answer's status (its body read and dropped)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, chunked = None, False
        for line in lines[1:]:
            key, _, value = line.partition(b":")
            key = key.strip().lower()
            if key == b"content-length":
                length = int(value)
            elif key == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if chunked:   # KServe streams its answers
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    return status
        if length is None:
            raise ConnectionError("an answer with neither Content-Length nor chunks")
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


@dataclass
class Point:
    """One point of a sweep: latencies (seconds) of the 200 answers, the other outcomes,
    the wall time and the load generator's CPU time over it."""

    label: str
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    wall: float = 0.0
    client_cpu: float = 0.0
    offered: float | None = None   # requests a second offered (open loop)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    def percentiles(self) -> tuple[float, float, float]:
        if not self.latencies:
            return (float("nan"),) * 3
        return tuple(float(v) for v in np.percentile(np.array(self.latencies) * 1e3,
                                                     [50, 90, 99]))

    def row(self) -> str:
        p50, p90, p99 = self.percentiles()
        errors = ", ".join(f"{k} x{v}" for k, v in sorted(self.errors.items())) or "none"
        offered = f"  offered {self.offered:7.1f}/s" if self.offered is not None else ""
        return (f"  {self.label:<14} p50 {p50:8.2f} ms  p90 {p90:8.2f} ms  p99 {p99:8.2f} ms  "
                f"{self.throughput:7.1f} req/s{offered}  errors: {errors}  "
                f"client CPU {100 * self.client_cpu / self.wall if self.wall else 0:4.0f}%")


async def _one(port: int, request: bytes, pool: list[Connection], point: Point,
               since: float) -> None:
    """Send `request` on an idle connection of `pool` (or a new one) and record its
    latency from `since` (perf_counter seconds)."""
    connection = pool.pop() if pool else None
    try:
        if connection is None:
            connection = await Connection.open(port)
        status = await asyncio.wait_for(connection.send(request), REQUEST_TIMEOUT_S)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError) as exc:
        point.error(type(exc).__name__)
        if connection is not None:
            connection.close()
        return
    if status == 200:
        point.latencies.append(time.perf_counter() - since)
    else:
        point.error(f"HTTP {status}")
    pool.append(connection)


async def closed_loop(port: int, request: bytes, concurrency: int, seconds: float,
                      label: str) -> Point:
    """`concurrency` connections, each sending its next request when the last is
    answered, for `seconds` (after a short warm-up, uncounted)."""
    point = Point(label)
    pools = [[await Connection.open(port)] for _ in range(concurrency)]

    async def client(pool: list[Connection], until: float, record: Point) -> None:
        while time.perf_counter() < until:   # a failed connection is opened again
            await _one(port, request, pool, record, time.perf_counter())

    warm = Point("warm-up")
    await asyncio.gather(*(client(p, time.perf_counter() + min(0.5, seconds / 5), warm)
                           for p in pools))
    cpu, began = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client(p, began + seconds, point) for p in pools))
    point.wall = time.perf_counter() - began
    point.client_cpu = time.process_time() - cpu
    for pool in pools:
        for connection in pool:
            connection.close()
    return point


def poisson_offsets(rate: float, seconds: float, seed: int = 0) -> np.ndarray:
    """Arrival times (seconds from 0) of a Poisson process of `rate` a second over
    `seconds`: cumulated exponential gaps."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / rate, int(rate * seconds * 1.5) + 16)
    offsets = np.cumsum(gaps)
    while offsets[-1] < seconds:   # rare: more arrivals than 1.5x the mean
        offsets = np.concatenate([offsets, offsets[-1] + np.cumsum(
            rng.exponential(1.0 / rate, len(gaps)))])
    return offsets[offsets < seconds]


async def open_loop(port: int, request: bytes, rate: float, seconds: float, label: str,
                    seed: int = 0) -> Point:
    """Poisson arrivals at `rate` a second for `seconds`; each request's latency runs from
    its scheduled send time. A request finds an idle keep-alive connection or opens one,
    so that arrivals never wait for answers."""
    point = Point(label, offered=rate)
    pool = [await Connection.open(port) for _ in range(4)]
    offsets = poisson_offsets(rate, seconds, seed)
    tasks = []
    cpu = time.process_time()
    start = time.perf_counter() + 0.01
    for offset in offsets:
        scheduled = start + offset
        pause = scheduled - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        tasks.append(asyncio.ensure_future(_one(port, request, pool, point, scheduled)))
    await asyncio.gather(*tasks)
    point.wall = max(seconds, time.perf_counter() - start)
    point.client_cpu = time.process_time() - cpu
    for connection in pool:
        connection.close()
    return point


def ideal_queue(service: np.ndarray, rate: float, count: int = 200_000, seed: int = 0
                ) -> np.ndarray:
    """Response times (seconds) of an ideal server: one FIFO queue before one instance
    that adds nothing to the run, Poisson arrivals at `rate`, each run's time drawn from
    `service` (measured in process). The Lindley recursion: a request waits for what the
    one before it left, less the gap between them. At 80% of its peak even this server
    has a p99 several times its p50, so that ratio is shown beside the measured ones."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / rate, count)
    runs = rng.choice(service, count)
    waits = np.empty(count)
    wait = 0.0
    for i in range(count):
        waits[i] = wait
        wait = max(0.0, wait + runs[i] - gaps[(i + 1) % count])
    return waits + runs


# -- the servers -------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kiln_env() -> dict[str, str]:
    """The environment of a subprocess that must import the kiln this process imported."""
    import kiln

    parent = os.path.dirname(os.path.dirname(kiln.__file__))
    return dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(
        p for p in (parent, os.environ.get("PYTHONPATH", "")) if p))


class Server:
    """A server process pinned to `cpus`, once /v2/health/ready answers 200; `env` is its
    environment (default: kiln_env())."""

    def __init__(self, command: list[str], port: int, cpus: set[int], what: str,
                 env: dict[str, str] | None = None):
        self.what, self.port = what, port
        # its output goes to a file: a pipe nobody reads would stop a chatty server
        self.output = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(command, env=env or kiln_env(), stdout=self.output,
                                        stderr=subprocess.STDOUT, text=True,
                                        preexec_fn=lambda: os.sched_setaffinity(0, cpus))
        end = time.monotonic() + 120
        while time.monotonic() < end:
            if self.process.poll() is not None:
                self.output.seek(0)
                raise RuntimeError(f"{what} exited with status {self.process.returncode}: "
                                   f"{self.output.read()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), 1) as sock:
                    sock.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
                    if sock.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.close()
        raise RuntimeError(f"{what} was not ready within 120 s")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.output.close()


def kiln_repo(root: Path, name: str, library: Path, instances: int = 1,
              versions: int = 1) -> Path:
    """A repository of `library` as model `name` (`versions` copies of it as versions,
    all served; `instances` instances)."""
    for version in range(1, versions + 1):
        folder = root / name / str(version)
        folder.mkdir(parents=True)
        (folder / "model.so").write_bytes(library.read_bytes())
    config = {"instances": instances, "version_policy": {"all": {}}}
    (root / name / "config.json").write_text(json.dumps(config))
    return root


def start_kiln(repo: Path, threads: int, cpus: set[int], checkout: str | None = None
               ) -> Server:
    """`kiln serve` on `repo`: this process's kiln, or the one in `checkout` (a folder
    holding a `kiln` package)."""
    port = free_port()
    env = None if checkout is None else dict(os.environ, PYTHONUNBUFFERED="1",
                                             PYTHONPATH=os.path.abspath(checkout))
    return Server([sys.executable, "-m", "kiln", "serve", str(repo), "--http-port", str(port),
                   "--grpc-port", "-1", "--threads", str(threads)], port, cpus,
                  "kiln serve" if checkout is None else f"kiln serve of {checkout}", env)


def start_peer(kind: str, python: str, onnx_path: Path, name: str, threads: int,
               cpus: set[int]) -> Server:
    port = free_port()
    return Server([python, "-m", "kiln.benchmarks.serve_load_peers", kind, str(onnx_path),
                   name, str(port), str(threads)], port, cpus, f"the {kind} peer")


def kserve_python(given: str | None) -> str | None:
    """An interpreter where `import kserve` works: --kserve-python, or this one."""
    candidates = [given] if given else [sys.executable]
    for python in candidates:
        probe = subprocess.run([python, "-c", "import kserve, onnxruntime"],
                               capture_output=True, env=kiln_env())
        if probe.returncode == 0:
            return python
    return None


# -- the measurements --------------------------------------------------------------------

def in_process(library: Path, onnx_path: Path, feed: dict[str, np.ndarray], threads: int,
               cpus: set[int], seconds: float) -> list[Point]:
    """session.run of Kiln and of ONNX Runtime back to back on `cpus` for `seconds` each."""
    from kiln.runtime import load

    from .serve_load_peers import ort_session

    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        points = []
        with load(library, threads=threads) as session:
            points.append(_timed("kiln run", lambda: session.run(feed), seconds))
        ort = ort_session(str(onnx_path), threads)
        names = [o.name for o in ort.get_outputs()]
        points.append(_timed("ORT run", lambda: ort.run(names, feed), seconds))
        return points
    finally:
        os.sched_setaffinity(0, mine)


def _timed(label: str, run, seconds: float) -> Point:
    point = Point(label)
    end = time.perf_counter() + seconds / 5
    while time.perf_counter() < end:   # warm-up
        run()
    cpu, began = time.process_time(), time.perf_counter()
    while time.perf_counter() - began < seconds:
        start = time.perf_counter()
        run()
        point.latencies.append(time.perf_counter() - start)
    point.wall = time.perf_counter() - began
    point.client_cpu = time.process_time() - cpu
    return point


@dataclass
class Sweep:
    """The points of one server on one model."""

    server: str
    json_c1: Point | None = None
    closed: list[Point] = field(default_factory=list)
    open: list[Point] = field(default_factory=list)

    @property
    def peak(self) -> float:
        return max(p.throughput for p in self.closed)


def sweep(server: Server, name: str, label: str, feed: dict[str, np.ndarray],
          seconds: float) -> Sweep:
    binary = request_bytes(name, feed, True)
    plain = request_bytes(name, feed, False)
    result = Sweep(label)
    print(f"{label}:", flush=True)
    result.json_c1 = asyncio.run(closed_loop(server.port, plain, 1, seconds, "JSON, c=1"))
    print(result.json_c1.row(), flush=True)
    for concurrency in CONCURRENCY:
        point = asyncio.run(closed_loop(server.port, binary, concurrency, seconds,
                                        f"closed c={concurrency}"))
        result.closed.append(point)
        print(point.row(), flush=True)
    peak = result.peak
    if not peak:
        print("  no request succeeded: no open-loop points", flush=True)
        return result
    for i, fraction in enumerate(RATES):
        point = asyncio.run(open_loop(server.port, binary, fraction * peak, seconds,
                                      f"open {fraction:.0%} peak", seed=i))
        result.open.append(point)
        print(point.row(), flush=True)
    return result


def interleaved_c1(servers: dict[str, Server], library: Path, onnx_path: Path, name: str,
                   feed: dict[str, np.ndarray], threads: int, cpus: set[int], seconds: float,
                   rounds: int = 10) -> tuple[list[Point], dict[str, Sweep]]:
    """Concurrency 1 of every server of `servers` (all running at once), binary then JSON,
    and the in-process runs of Kiln and ONNX Runtime on `cpus`, in turns of
    `seconds / rounds` each, `rounds` times over: on a shared machine a neighbour's burst
    then falls on all of them alike, not on whichever was measured at the time. Returns
    the in-process points (Kiln, ONNX Runtime) and a Sweep of each server."""
    from kiln.runtime import load

    from .serve_load_peers import ort_session

    turn = seconds / rounds
    ort = ort_session(str(onnx_path), threads)
    names = [o.name for o in ort.get_outputs()]
    floors = [Point("kiln run"), Point("ORT run")]
    sweeps = {label: Sweep(label, Point("JSON, c=1"), [Point("closed c=1")])
              for label in servers}
    requests = (request_bytes(name, feed, True), request_bytes(name, feed, False))
    mine = os.sched_getaffinity(0)
    with load(library, threads=threads) as session:
        runs = (lambda: session.run(feed), lambda: ort.run(names, feed))
        for _ in range(rounds):
            os.sched_setaffinity(0, cpus)
            try:
                for point, run in zip(floors, runs):
                    _merge(point, _timed(point.label, run, turn))
            finally:
                os.sched_setaffinity(0, mine)
            for label, server in servers.items():
                points = (sweeps[label].closed[0], sweeps[label].json_c1)
                for point, request in zip(points, requests):
                    _merge(point, asyncio.run(closed_loop(server.port, request, 1, turn,
                                                          point.label)))
    return floors, sweeps


def _merge(point: Point, part: Point) -> None:
    """Add `part`'s requests, errors and times to `point`."""
    point.latencies += part.latencies
    for what, count in part.errors.items():
        point.errors[what] = point.errors.get(what, 0) + count
    point.wall += part.wall
    point.client_cpu += part.client_cpu


def memory(library: Path, name: str, threads: int, cpus: set[int], folder: Path
           ) -> dict[str, float]:
    """RSS (MiB) of `kiln serve` with one instance, two instances, two versions."""
    rss = {}
    for label, instances, versions in [("1 instance", 1, 1), ("2 instances", 2, 1),
                                       ("2 versions", 1, 2)]:
        repo = kiln_repo(folder / f"mem-{instances}-{versions}", name, library, instances,
                         versions)
        server = start_kiln(repo, threads * instances * versions, cpus)
        try:
            time.sleep(0.5)
            rss[label] = server.rss_mb()
        finally:
            server.close()
    return rss


def summary(name: str, floors: list[list[Point]], sweeps: dict[str, Sweep],
            c1_only: bool = False) -> list[str]:
    """The figures the issue asks for, of one model (with `c1_only`, those of concurrency
    1). `floors`: the in-process runs (Kiln, ONNX Runtime) before and after the servers;
    the lower p50 of each is the floor, so that a neighbour's burst during one of them does
    not flatter the servers."""
    lines = [f"{name}:"]
    kiln_floor = min(f[0].percentiles()[0] for f in floors)
    ort_floor = min(f[1].percentiles()[0] for f in floors)
    kiln = sweeps.get("kiln serve")
    overheads = {}
    for label, result in sweeps.items():
        floor = ort_floor if label.startswith("ORT") else kiln_floor
        overheads[label] = (result.closed[0].percentiles()[0] - floor,
                            result.json_c1.percentiles()[0] - floor)
        lines.append(f"  concurrency 1, {label} p50 minus its runtime's in-process p50: "
                     f"binary {overheads[label][0]:+.3f} ms, JSON {overheads[label][1]:+.3f} "
                     f"ms")
    lines.append(f"  in-process p50: Kiln {kiln_floor:.3f} ms, ORT {ort_floor:.3f} ms")
    for label in overheads:
        if label.startswith("kiln serve of") and "kiln serve" in overheads:
            ratios = [f"{what} {mine / base:.2f}x" if mine > 0 and base > 0 else
                      f"{what} n/a (an overhead within the floor's noise)"
                      for what, mine, base in zip(("binary", "JSON"), overheads["kiln serve"],
                                                  overheads[label])]
            lines.append(f"  overhead, kiln serve / {label}: {', '.join(ratios)}")
    if c1_only:
        return lines
    service = np.array(floors[0][0].latencies + floors[-1][0].latencies)
    ideal = ideal_queue(service, 0.8 / service.mean()) * 1e3
    p50, p99 = np.percentile(ideal, [50, 99])
    lines.append(f"  an ideal server (no overhead, Kiln's in-process run times) at 80% of its "
                 f"peak: p99/p50 = {p99 / p50:.2f} (p50 {p50:.2f} ms, p99 {p99:.2f} ms)")
    for label, result in sweeps.items():
        if not result.open:
            lines.append(f"  {label:<20} no request succeeded")
            continue
        at80 = result.open[RATES.index(0.8)]
        p50, _, p99 = at80.percentiles()
        # the server's own cost: its peak against its runtime's back-to-back rate
        runtime = kiln_floor if label == "kiln serve" else ort_floor
        share = result.peak * runtime / 1e3
        lines.append(f"  {label:<20} peak {result.peak:7.1f} req/s ({share:.2f}x its "
                     f"runtime's in-process rate); at 80% of peak p99/p50 = "
                     f"{p99 / p50:.2f} (p50 {p50:.2f} ms, p99 {p99:.2f} ms)")
    for peer in ("ORT + FastAPI", "ORT + KServe"):
        if kiln is not None and peer in sweeps and sweeps[peer].peak:
            lines.append(f"  peak throughput kiln serve / {peer}: "
                         f"{kiln.peak / sweeps[peer].peak:.2f}x")
    return lines


def full_sweeps(starts: list[tuple[str, Callable[[], Server]]], library: Path,
                onnx_path: Path, name: str, feed: dict[str, np.ndarray], threads: int,
                cpus: set[int], seconds: float) -> tuple[list[list[Point]], dict[str, Sweep]]:
    """The in-process floor, each server's sweep in turn, then the floor again."""
    floors = [in_process(library, onnx_path, feed, threads, cpus, seconds)]
    for point in floors[0]:
        print(point.row().replace("client CPU", "CPU"), flush=True)
    sweeps = {}
    for label, start in starts:
        server = start()
        try:
            sweeps[label] = sweep(server, name, label, feed, seconds)
        finally:
            server.close()
    floors.append(in_process(library, onnx_path, feed, threads, cpus, seconds))
    print("in process again, after the servers:", flush=True)
    for point in floors[1]:
        print(point.row().replace("client CPU", "CPU"), flush=True)
    return floors, sweeps


def c1_only(starts: list[tuple[str, Callable[[], Server]]], library: Path, onnx_path: Path,
            name: str, feed: dict[str, np.ndarray], threads: int, cpus: set[int],
            seconds: float) -> tuple[list[list[Point]], dict[str, Sweep]]:
    """Every server started at once, then interleaved_c1."""
    servers = {}
    try:
        for label, start in starts:
            servers[label] = start()
        floors, sweeps = interleaved_c1(servers, library, onnx_path, name, feed, threads,
                                        cpus, seconds)
    finally:
        for server in servers.values():
            server.close()
    for point in floors:
        print(point.row().replace("client CPU", "CPU"), flush=True)
    for label, result in sweeps.items():
        print(f"{label}:\n{result.json_c1.row()}\n{result.closed[0].row()}", flush=True)
    return [floors], sweeps


def parse_cpus(text: str) -> set[int]:
    return {int(c) for c in text.split(",") if c.strip()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds of each point of the sweeps")
    parser.add_argument("--threads", type=int, default=1,
                        help="runtime threads (Kiln) and intra-op threads (ONNX Runtime)")
    parser.add_argument("--server-cpus", default="0", help="CPUs of every server process")
    parser.add_argument("--client-cpus", default="1", help="CPUs of the load generator")
    parser.add_argument("--peers", default="inprocess,kiln,fastapi,kserve")
    parser.add_argument("--kserve-python", default=None,
                        help="a Python where kserve is installed (default: this one)")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the RSS of extra instances and versions")
    parser.add_argument("--c1-only", action="store_true",
                        help="concurrency 1 alone, binary and JSON (no open loop, no memory)")
    parser.add_argument("--baseline", default=None, metavar="PATH",
                        help="another Kiln checkout (the folder holding its kiln package) "
                             "whose kiln serve runs beside this one's")
    args = parser.parse_args(argv)
    import kiln

    server_cpus, client_cpus = parse_cpus(args.server_cpus), parse_cpus(args.client_cpus)
    machine = cpu_summary()
    os.sched_setaffinity(0, client_cpus)
    peers = set(args.peers.split(","))
    notes = []
    kserve = kserve_python(args.kserve_python) if "kserve" in peers else None
    if "kserve" in peers and kserve is None:
        notes.append("ORT + KServe skipped: `import kserve` fails in "
                     f"{args.kserve_python or sys.executable} (pip install kserve, or "
                     f"--kserve-python a Python where it is installed)")
    if "fastapi" in peers and importlib.util.find_spec("fastapi") is None:
        peers.discard("fastapi")
        notes.append("ORT + FastAPI skipped: fastapi is not installed (pip install fastapi)")
    print(f"{machine}; servers pinned to CPUs {sorted(server_cpus)}, the load "
          f"generator to CPUs {sorted(client_cpus)}; {args.threads} runtime thread(s); "
          f"{args.duration:g} s a point", flush=True)
    for note in notes:
        print(note, flush=True)
    report = []
    with tempfile.TemporaryDirectory(prefix="kiln-serve-load-") as tmp:
        folder = Path(tmp)
        for name in args.models.split(","):
            feed = model_inputs(name)
            onnx_path = fixed_onnx(name, feed, folder / f"{name}.onnx")
            library = Path(kiln.compile(str(onnx_path), output=str(folder / f"{name}.so")))
            print(f"\n== {name} ({', '.join(f'{k} {list(v.shape)}' for k, v in feed.items())})",
                  flush=True)
            starts = []
            if "kiln" in peers:
                repo = kiln_repo(folder / f"repo-{name}", name, library)
                starts.append(("kiln serve", lambda: start_kiln(repo, args.threads,
                                                                server_cpus)))
                if args.baseline:
                    starts.append((f"kiln serve of {args.baseline}", lambda: start_kiln(
                        repo, args.threads, server_cpus, args.baseline)))
            if "fastapi" in peers:
                starts.append(("ORT + FastAPI", lambda: start_peer(
                    "fastapi", sys.executable, onnx_path, name, args.threads, server_cpus)))
            if kserve is not None:
                starts.append(("ORT + KServe", lambda: start_peer(
                    "kserve", kserve, onnx_path, name, args.threads, server_cpus)))
            if args.c1_only:
                floors, sweeps = c1_only(starts, library, onnx_path, name, feed, args.threads,
                                         server_cpus, args.duration)
            else:
                floors, sweeps = full_sweeps(starts, library, onnx_path, name, feed,
                                             args.threads, server_cpus, args.duration)
            report += summary(name, floors, sweeps, args.c1_only)
            if "kiln" in peers and not (args.no_memory or args.c1_only):
                rss = memory(library, name, args.threads, server_cpus, folder)
                one = rss["1 instance"]
                report.append(f"  kiln serve RSS: {one:.1f} MiB with 1 instance; "
                              f"+{rss['2 instances'] - one:.1f} MiB for a second instance, "
                              f"+{rss['2 versions'] - one:.1f} MiB for a second version "
                              f"(model.so {library.stat().st_size / 2**20:.1f} MiB)")
    print("\n" + "\n".join(report + notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
