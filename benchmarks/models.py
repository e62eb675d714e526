"""Kiln against ONNX Runtime (and Apache TVM when installed), side by side, in one process.

    python -m kiln.benchmarks.models --output docs/performance.md

For each test model (batch 1, BERT at seq 128): compile with Kiln, then at 1 and at 2
threads time Kiln and ONNX Runtime alternately, run by run (warm-up first), and report the
median and p90 latency of each and the Kiln/peer ratio of medians, as a markdown table
headed by the machine's CPU model and vector flags.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import zoo
from .machine import cpu_summary

MODELS = ["resnet18", "mobilenet_v2", "squeezenet1_1", "bert_small_random"]
SEQ = 128


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


def model_inputs(model) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Deterministic inputs for a test model and the dims to pin."""
    rng = np.random.default_rng(0)
    names = [i.name for i in model.graph.input]
    if "input_ids" in names:
        feed = {"input_ids": rng.integers(0, 1000, (1, SEQ)).astype(np.int64),
                "attention_mask": np.ones((1, SEQ), np.int64),
                "token_type_ids": np.zeros((1, SEQ), np.int64)}
        return {k: v for k, v in feed.items() if k in names}, {"batch": 1, "seq": SEQ}
    return {names[0]: rng.standard_normal((1, 3, 224, 224)).astype(np.float32)}, {"batch": 1}


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


def bench_model(name: str, threads_list: list[int], workdir: Path, args) -> list[dict]:
    """Rows of the table for one model: one per thread count."""
    import kiln
    from kiln.driver import compile_detailed
    from kiln.runtime import load

    model = zoo.load(name)
    feed, dims = model_inputs(model)
    result = compile_detailed(model, target="host", output=workdir / f"{name}.so", dims=dims,
                              cpu=args.cpu)
    rows = []
    for threads in threads_list:
        session = load(str(result.library), threads=threads)
        runners = {"kiln": session.run, "ort": ort_runner(model, threads)}
        if args.tvm:
            tvm = tvm_runner(model, feed, threads)
            if tvm is not None:
                runners["tvm"] = tvm
        timings = time_alternately(runners, feed, args.warmup, args.runs, args.budget,
                                   args.pause, args.burst)
        row = {"model": name, "threads": threads, "timings": timings,
               "compile_s": result.compile_seconds, "so_bytes": result.library_size,
               "weights": model_weight_bytes(model)}
        if args.profile and threads == threads_list[0]:
            from kiln.runtime.profile import format_profile, profile
            row["profile"] = format_profile(profile(session, feed, runs=10), top=8)
        rows.append(row)
        session.close()
        print(f"{name} x{threads}: " + ", ".join(
            f"{k} {t.median:.2f} ms" for k, t in timings.items()), file=sys.stderr)
    del kiln
    return rows


def render(rows: list[dict], command: str) -> str:
    """The markdown report."""
    peers = [p for p in ("ort", "tvm") if any(p in r["timings"] for r in rows)]
    head = ["model", "threads", "Kiln median ms", "Kiln p90 ms"]
    for p in peers:
        label = {"ort": "ORT", "tvm": "TVM"}[p]
        head += [f"{label} median ms", f"{label} p90 ms", f"Kiln/{label}"]
    lines = ["# Performance: Kiln against its peers", "",
             f"Machine: {cpu_summary()}; Python {platform.python_version()}.", "",
             f"Command: `{command}`", "",
             "Latency of one inference at batch 1 (BERT: seq 128), Kiln and each peer timed "
             "alternately in one process: in turn, each runs a burst of back-to-back "
             "inferences after a pause and an untimed run (so no runtime's spinning threads "
             "hold a core while another is timed); ratio = Kiln median / peer median "
             "(< 1: Kiln is faster).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        t = r["timings"]
        cells = [r["model"], str(r["threads"]), f"{t['kiln'].median:.2f}",
                 f"{t['kiln'].p90:.2f}"]
        for p in peers:
            if p in t:
                cells += [f"{t[p].median:.2f}", f"{t[p].p90:.2f}",
                          f"{t['kiln'].median / t[p].median:.2f}"]
            else:
                cells += ["-", "-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Artifact size against the model's own weights (its initializers): the budget is "
              "10% more plus 1 MiB.", "",
              "| model | compile s | artifact MiB | model weights MiB | within budget |",
              "|---|---|---|---|---|"]
    for r in rows:
        if r["threads"] == rows[0]["threads"]:
            lines.append(f"| {r['model']} | {r['compile_s']:.1f} | "
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
        for name in args.models:
            rows += bench_model(name, args.threads, Path(tmp), args)
    text = render(rows, command.strip())
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
