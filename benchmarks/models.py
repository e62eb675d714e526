"""Kiln against ONNX Runtime (and Apache TVM when installed), side by side, in one process.

    python -m kiln.benchmarks.models --output docs/performance.md

For each model (the four test models and the three built architectures of kiln.zoo; BERT at
seq 128), at each batch size (1 and 8) and thread count (1 and 2): compile with Kiln, check
its outputs against ONNX Runtime's (a benchmark of a wrong answer is refused), then time Kiln
and ONNX Runtime alternately, burst by burst (warm-up first), quiet and again beside a busy
neighbour (a process spinning on one core for the whole measurement). The markdown table
gives the median and p90 latency of each, the Kiln/peer ratio of medians and at batch > 1
the throughput; it ends with the worst ratio of each kind, not an average.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .. import zoo
from .machine import cpu_summary

MODELS = ["resnet18", "mobilenet_v2", "squeezenet1_1", "bert_small_random", *zoo.BUILT_MODELS]
SEQ = 128
#: Kiln's outputs must match ONNX Runtime's within this fraction of the output's own scale.
TOLERANCE = 1e-3


@dataclass
class Timing:
    """Latencies of one runner, in milliseconds."""

    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p90(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def model_inputs(model, batch: int = 1) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Deterministic inputs for a test model at `batch`, and the dims to pin."""
    rng = np.random.default_rng(0)
    names = [i.name for i in model.graph.input]
    if "input_ids" in names:
        feed = {"input_ids": rng.integers(0, 1000, (batch, SEQ)).astype(np.int64),
                "attention_mask": np.ones((batch, SEQ), np.int64),
                "token_type_ids": np.zeros((batch, SEQ), np.int64)}
        return {k: v for k, v in feed.items() if k in names}, {"batch": batch, "seq": SEQ}
    image = rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)
    return {names[0]: image}, {"batch": batch}


def model_weight_bytes(model) -> int:
    """Bytes of the model's initializers: what its weights cost in any format."""
    from onnx import numpy_helper

    return sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer)


def ort_runner(model, threads: int) -> Callable[[dict], object]:
    """ONNX Runtime's CPU provider with all graph optimizations, `threads` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return lambda feed: session.run(None, feed)


def tvm_runner(model, feed: dict, threads: int) -> Callable[[dict], object] | None:
    """Apache TVM (Relax frontend, default pipeline, no tuning) when it is importable. Its
    importer fails on some exported graphs (ConstantOfShape and Gather over shapes, as in
    BERT): those go in with their input shapes fixed and shape subgraphs folded by ONNX
    Runtime's basic graph optimizations."""
    try:
        import tvm
        from tvm import relax
        from tvm.relax.frontend.onnx import from_onnx
    except ImportError:
        return None
    shapes = {k: v.shape for k, v in feed.items()}
    try:
        mod = from_onnx(model, shape_dict=shapes)
    except Exception:   # noqa: BLE001  (the importer raises anything; retry folded)
        mod = from_onnx(_folded_for_tvm(model, feed), shape_dict=shapes)
    cpu = getattr(tvm.target.codegen, "llvm_get_system_cpu", lambda: "generic")()
    target = tvm.target.Target({"kind": "llvm", "mcpu": cpu, "num-cores": threads})
    executable = relax.build(mod, target=target)
    vm = relax.VirtualMachine(executable, tvm.cpu())
    to_device = tvm.runtime.tensor if hasattr(tvm.runtime, "tensor") else tvm.nd.array
    args = [to_device(feed[i.name], tvm.cpu()) for i in model.graph.input if i.name in feed]
    return lambda _feed: vm["main"](*args)


def _folded_for_tvm(model, feed: dict):
    """`model` with its inputs' shapes fixed to the feed's and shape subgraphs folded (ONNX
    Runtime's basic optimizations, saved with optimized_model_filepath)."""
    import onnx
    import onnxruntime as ort

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in fixed.graph.input:
        if value.name in feed:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, feed[value.name].shape):
                dim.Clear()
                dim.dim_value = size
    with tempfile.TemporaryDirectory(prefix="kiln-tvm-") as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(Path(tmp) / "folded.onnx")
        ort.InferenceSession(fixed.SerializeToString(), options,
                             providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


def time_alternately(runners: dict[str, Callable], feed: dict, warmup: int,
                     runs: int, budget_s: float, pause_s: float = 0.05,
                     burst: int = 3) -> dict[str, Timing]:
    """Time the runners in turn, a burst of back-to-back runs each, so drift hits all alike.
    Each turn starts with a pause and an untimed run: a runtime's worker threads spin for a
    while after its last run (ONNX Runtime's for over 10 ms) and would hold a core while the
    next runner is timed, and the untimed run brings the runner's weights back into cache.
    The timed runs are the steady state of a loop of inferences."""
    for _ in range(warmup):
        for run in runners.values():
            run(feed)
    samples: dict[str, list[float]] = {name: [] for name in runners}
    deadline = time.perf_counter() + budget_s
    while min(len(s) for s in samples.values()) < runs:
        for name, run in runners.items():
            time.sleep(pause_s)
            run(feed)
            for _ in range(burst):
                start = time.perf_counter()
                run(feed)
                samples[name].append((time.perf_counter() - start) * 1e3)
        if min(len(s) for s in samples.values()) >= 5 and time.perf_counter() > deadline:
            break
    return {name: Timing(s) for name, s in samples.items()}


class WrongOutputError(AssertionError):
    """Kiln's answer differs from ONNX Runtime's: its timing would mean nothing."""


def check_outputs(name: str, kiln_run: Callable, ort_run: Callable, feed: dict) -> float:
    """The largest error of Kiln's outputs against ONNX Runtime's, as a fraction of each
    output's standard deviation; raises WrongOutputError above TOLERANCE."""
    worst = 0.0
    for ours, theirs in zip(kiln_run(feed).values(), ort_run(feed)):
        scale = float(np.std(theirs)) or 1.0
        error = float(np.max(np.abs(ours.astype(np.float64) - theirs))) / scale
        worst = max(worst, error)
    if not worst <= TOLERANCE:
        raise WrongOutputError(f"{name}: Kiln's output is off ONNX Runtime's by {worst:.3g} "
                               f"of its scale (tolerance {TOLERANCE})")
    return worst


def _spin(stop) -> None:
    while not stop.is_set():
        pass


@contextmanager
def busy_neighbour(active: bool) -> Iterator[None]:
    """A process that keeps one core busy (a pure spin loop, no yielding) while the block
    runs: what a runtime's spinning workers, or any busy program, does to its neighbours."""
    if not active:
        yield
        return
    context = multiprocessing.get_context("spawn")   # no fork of a process with thread pools
    stop = context.Event()
    process = context.Process(target=_spin, args=(stop,), daemon=True)
    process.start()
    try:
        time.sleep(0.5)   # started and spinning before the first timed run
        yield
    finally:
        stop.set()
        process.join(5)
        if process.is_alive():
            process.kill()


def time_after_neighbour(runners: dict[str, Callable], feed: dict, neighbour: Callable,
                         runs: int) -> dict[str, Timing]:
    """Each timed run right after one run of `neighbour` (another ONNX Runtime session,
    whose workers go on spinning for tens of milliseconds after each run), in turn for
    every runner: the same busy neighbour for Kiln and for ONNX Runtime."""
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for run in (*runners.values(), neighbour):
        run(feed)
    for _ in range(runs):
        for name, run in runners.items():
            neighbour(feed)
            start = time.perf_counter()
            run(feed)
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: Timing(s) for name, s in samples.items()}


def bench_model(name: str, batch: int, threads_list: list[int], workdir: Path, args
                ) -> list[dict]:
    """Rows of the table for one model at one batch size: one per thread count and
    neighbour (quiet, then busy where asked)."""
    from kiln.driver import compile_detailed
    from kiln.runtime import load

    model = zoo.load(name)
    feed, dims = model_inputs(model, batch)
    result = compile_detailed(model, target="host", output=workdir / f"{name}_b{batch}.so",
                              dims=dims, cpu=args.cpu)
    rows = []
    for threads in threads_list:
        session = load(str(result.library), threads=threads)
        runners = {"kiln": session.run, "ort": ort_runner(model, threads)}
        error = check_outputs(name, runners["kiln"], runners["ort"], feed)
        if args.tvm and batch == 1:
            tvm = tvm_runner(model, feed, threads)
            if tvm is not None:
                runners["tvm"] = tvm
        for busy in ([False, True] if args.busy and batch == 1 else [False]):
            if busy and args.neighbour == "ort":
                timings = time_after_neighbour(runners, feed, ort_runner(model, threads),
                                               args.runs)
            else:
                with busy_neighbour(busy):
                    timings = time_alternately(runners, feed, args.warmup, args.runs,
                                               args.budget, args.pause, args.burst)
            row = {"model": name, "batch": batch, "threads": threads, "busy": busy,
                   "timings": timings, "error": error, "compile_s": result.compile_seconds,
                   "so_bytes": result.library_size, "weights": model_weight_bytes(model)}
            if args.profile and threads == threads_list[0] and not busy and batch == 1:
                from kiln.runtime.profile import format_profile, profile
                row["profile"] = format_profile(profile(session, feed, runs=10), top=8)
            rows.append(row)
            print(f"{name} b{batch} x{threads}{' busy' if busy else ''}: " + ", ".join(
                f"{k} {t.median:.2f} ms" for k, t in timings.items()), file=sys.stderr)
        session.close()
    return rows


def _ratio(row: dict, peer: str = "ort") -> float:
    return row["timings"]["kiln"].median / row["timings"][peer].median


def worst_ratios(rows: list[dict]) -> list[str]:
    """One line per kind of comparison: the worst model, not an average."""
    lines = []
    quiet1 = [r for r in rows if r["batch"] == 1 and not r["busy"]]
    if quiet1:
        worst = max(quiet1, key=_ratio)
        lines.append(f"- Worst Kiln/ORT latency at batch 1: **{_ratio(worst):.2f}** "
                     f"({worst['model']}, {worst['threads']} thread(s); goal <= 0.8).")
    batched = [r for r in rows if r["batch"] > 1]
    if batched:
        worst = max(batched, key=_ratio)
        lines.append(f"- Worst Kiln/ORT throughput at batch {worst['batch']}: "
                     f"**{1 / _ratio(worst):.2f}x** ({worst['model']}, {worst['threads']} "
                     f"thread(s); goal >= 1.25x).")
    quiet = {(r["model"], r["threads"]): r for r in quiet1}
    degraded = [(_ratio(r) / _ratio(quiet[(r["model"], r["threads"])]), r)
                for r in rows if r["busy"] and (r["model"], r["threads"]) in quiet]
    if degraded:
        factor, worst = max(degraded, key=lambda d: d[0])
        lines.append(f"- Worst Kiln/ORT beside a busy neighbour against the quiet ratio: "
                     f"**{factor:.2f}x** ({worst['model']}, {worst['threads']} thread(s); "
                     f"{_ratio(worst):.2f} busy, "
                     f"{_ratio(quiet[(worst['model'], worst['threads'])]):.2f} quiet; "
                     "goal <= 1.1x at 2 threads).")
    return lines


def render(rows: list[dict], command: str) -> str:
    """The markdown report."""
    peers = [p for p in ("ort", "tvm") if any(p in r["timings"] for r in rows)]
    head = ["model", "batch", "threads", "neighbour", "Kiln median ms", "Kiln p90 ms"]
    for p in peers:
        label = {"ort": "ORT", "tvm": "TVM"}[p]
        head += [f"{label} median ms", f"{label} p90 ms", f"Kiln/{label}"]
    head += ["Kiln items/s", "ORT items/s"]
    lines = ["# Performance: Kiln against its peers", "",
             f"Machine: {cpu_summary()}; Python {platform.python_version()}.", "",
             f"Command: `{command}`", "",
             "Latency of one inference (BERT: seq 128), Kiln and each peer timed "
             "alternately in one process: in turn, each runs a burst of back-to-back "
             "inferences after a pause and an untimed run (so no runtime's spinning threads "
             "hold a core while another is timed); ratio = Kiln median / peer median "
             "(< 1: Kiln is faster); items/s = batch / median. Neighbour 'busy': a process "
             "spins on one core throughout (`--neighbour spin`), or each timed run follows "
             "a run of another ONNX Runtime session (`--neighbour ort`). Before timing, Kiln's outputs are checked "
             f"against ONNX Runtime's (within {TOLERANCE} of each output's scale).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        t = r["timings"]
        cells = [r["model"], str(r["batch"]), str(r["threads"]),
                 "busy" if r["busy"] else "-", f"{t['kiln'].median:.2f}", f"{t['kiln'].p90:.2f}"]
        for p in peers:
            if p in t:
                cells += [f"{t[p].median:.2f}", f"{t[p].p90:.2f}", f"{_ratio(r, p):.2f}"]
            else:
                cells += ["-", "-", "-"]
        cells += [f"{r['batch'] * 1e3 / t[k].median:.1f}" for k in ("kiln", "ort")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *worst_ratios(rows)]
    lines += ["", "Artifact size against the model's own weights (its initializers): the budget is "
              "10% more plus 1 MiB.", "",
              "| model | batch | compile s | artifact MiB | model weights MiB | within budget |",
              "|---|---|---|---|---|---|"]
    seen = set()
    for r in rows:
        if (r["model"], r["batch"]) not in seen:
            seen.add((r["model"], r["batch"]))
            lines.append(f"| {r['model']} | {r['batch']} | {r['compile_s']:.1f} | "
                         f"{r['so_bytes'] / 2**20:.2f} | {r['weights'] / 2**20:.2f} | "
                         f"{'yes' if r['so_bytes'] <= 1.1 * r['weights'] + 2**20 else 'no'} |")
    profiled = [r for r in rows if "profile" in r]
    if profiled:
        lines += ["", "## Where Kiln's time goes (`kiln run OUT.so --profile`, "
                  f"{profiled[0]['threads']} thread, top groups)", ""]
        for r in profiled:
            lines += [f"{r['model']}:", "", "```", r["profile"], "```", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Benchmark the models and print (and optionally write) the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--batch", nargs="*", type=int, default=[1, 8],
                        help="batch sizes (each its own artifact)")
    parser.add_argument("--neighbour", choices=["spin", "ort"], default="spin",
                        help="the busy neighbour: a process spinning on one core (spin), or "
                             "another ONNX Runtime session run right before each timed run, "
                             "its workers still spinning (ort)")
    parser.add_argument("--no-busy", dest="busy", action="store_false",
                        help="skip the runs beside a busy neighbour (batch 1)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=50, help="most timed runs per runner")
    parser.add_argument("--budget", type=float, default=20.0,
                        help="seconds per model and thread count (at least 5 runs)")
    parser.add_argument("--pause", type=float, default=0.05,
                        help="seconds of idle before each runner's turn (lets spinning worker "
                             "threads of the previous runner go to sleep)")
    parser.add_argument("--burst", type=int, default=3,
                        help="timed back-to-back runs per turn")
    parser.add_argument("--cpu", default=None, help="Kiln's --cpu (default: this host)")
    parser.add_argument("--no-tvm", dest="tvm", action="store_false")
    parser.add_argument("--profile", action="store_true",
                        help="add each model's top fused groups by time (first thread count)")
    parser.add_argument("--output", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    command = "python -m kiln.benchmarks.models " + " ".join(argv if argv is not None
                                                             else sys.argv[1:])
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as tmp:
        for batch in args.batch:
            for name in args.models:
                rows += bench_model(name, batch, args.threads, Path(tmp), args)
    text = render(rows, command.strip())
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
