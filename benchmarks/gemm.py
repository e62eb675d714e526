"""Kiln's generated float32 GEMM against the machine's measured peak and numpy's BLAS.

    python -m kiln.benchmarks.gemm [--sizes 256 512 1024 2048] [--threads 1] [--clock cpu]

Each size S compiles one MatMul [S, S] x [S, S] (B a constant, so packed at compile time)
and reports the best of several timed runs in GFLOP/s; numpy runs the same product; the
peak comes from an FMA loop with independent accumulators compiled for this host, run in
repetitions as long as one GEMM, in turn with the GEMM's own runs (on a shared machine the
speed drifts by tens of percent over minutes: each shape is compared with the peak measured
beside it). Run from the command line, it runs numpy's BLAS on as many threads as Kiln's
(OPENBLAS_NUM_THREADS and OMP_NUM_THREADS set to --threads, the process started again when
they differ). Measure numpy with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (measured here:
they halve its speed here).

`--clock cpu` (the default at one thread) times with the calling thread's CPU clock, the peak
loop included: on a shared machine, time spent descheduled then counts for none of them, so
the ratio to peak stays meaningful under load. `--clock wall` times elapsed time (always
used with several threads, whose work runs on other threads).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .machine import cpu_summary

#: GEMM shapes (M, K, N) that occur in the test models at batch 1: BERT's linear layers at
#: seq 128, and ResNet-18's 3x3 convs as the NHWC kernel runs them (pixels x window x
#: output channels).
MODEL_SHAPES = [(128, 256, 256), (128, 256, 1024), (128, 1024, 256), (3136, 576, 64),
                (784, 1152, 128), (196, 2304, 256), (49, 4608, 512)]

_PEAK_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
typedef float v __attribute__((vector_size(VBYTES)));
int main(int argc, char **argv) {
    v z = {0};   /* distinct starting values: the compiler must keep 12 chains */
    v a0 = z + 0.1f, a1 = z + 0.2f, a2 = z + 0.3f, a3 = z + 0.4f, a4 = z + 0.5f,
      a5 = z + 0.6f, a6 = z + 0.7f, a7 = z + 0.8f, a8 = z + 0.9f, a9 = z + 1.1f,
      a10 = z + 1.2f, a11 = z + 1.3f;
    v x = z + 0.9999f, y = z + 0.0001f;
    long iters = argc > 1 ? atol(argv[1]) : 4000000L / (VBYTES / 4);
    int reps = argc > 2 ? atoi(argv[2]) : 100;
    double best = 1e30;
    for (int rep = 0; rep < reps; rep++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK, &t0);
        for (long i = 0; i < iters; i++) {
            __asm__ volatile("" : "+x"(x));
            a0 = a0 * x + y; a1 = a1 * x + y; a2 = a2 * x + y; a3 = a3 * x + y;
            a4 = a4 * x + y; a5 = a5 * x + y; a6 = a6 * x + y; a7 = a7 * x + y;
            a8 = a8 * x + y; a9 = a9 * x + y; a10 = a10 * x + y; a11 = a11 * x + y;
        }
        clock_gettime(CLOCK, &t1);
        double secs = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
        if (secs < best) best = secs;
    }
    v s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
    printf("%f %f\n", 2.0 * 12 * (VBYTES / 4) * iters / best / 1e9, (double)s[0]);
    return 0;
}
"""


class PeakLoop:
    """The FMA loop compiled for this host, timed by the thread's CPU clock (clock="cpu")
    or elapsed time; peak(seconds) runs repetitions of about that length."""

    def __init__(self, vector_bits: int, clock: str, workdir: Path):
        clock_id = "CLOCK_THREAD_CPUTIME_ID" if clock == "cpu" else "CLOCK_MONOTONIC"
        src, self.exe = workdir / "peak.c", workdir / "peak"
        src.write_text(_PEAK_C.replace("VBYTES", str(vector_bits // 8))
                       .replace("CLOCK", clock_id))
        subprocess.run(["cc", "-O2", "-march=native", str(src), "-o", str(self.exe)],
                       check=True)
        self.flops_per_iter = 2.0 * 12 * (vector_bits // 32)

    def peak(self, seconds: float = 0.002, reps: int = 20) -> float:
        """GFLOP/s of the best of `reps` repetitions of about `seconds` each."""
        guess = 150e9   # FLOP/s, only to size the repetitions
        iters = max(1000, int(seconds * guess / self.flops_per_iter))
        out = subprocess.run([str(self.exe), str(iters), str(reps)], capture_output=True,
                             text=True, check=True).stdout
        return float(out.split()[0])


def gemm_model(m: int, k: int, n: int):
    """One MatMul x[m, k] @ W[k, n] with W a constant."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(1).standard_normal((k, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(w, "W")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def best_seconds(fn, min_runs: int = 3, budget_s: float = 1.5, clock: str = "wall") -> float:
    """The fastest of at least `min_runs` calls (and as many as fit in `budget_s`), by the
    calling thread's CPU time (clock="cpu") or elapsed time; never below the clock's
    resolution (a call shorter than a CPU-clock tick reads as 0)."""
    name = "thread_time" if clock == "cpu" else "perf_counter"
    now = getattr(time, name)
    tick = time.get_clock_info(name).resolution
    fn()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < min_runs or time.perf_counter() < deadline:
        start = now()
        fn()
        times.append(now() - start)
    return max(min(times), tick)


def bench_shape(m: int, k: int, n: int, threads: int, workdir: Path, loop: PeakLoop,
                clock: str = "wall", rounds: int = 4) -> tuple[float, float, float]:
    """(Kiln GFLOP/s, numpy GFLOP/s, peak GFLOP/s) for one shape: rounds of Kiln's runs,
    numpy's and the FMA loop's in turn, the best of each."""
    import kiln
    from kiln.runtime import load

    path = kiln.compile(gemm_model(m, k, n), output=workdir / f"gemm_{m}_{k}_{n}.so")
    session = load(path, threads=threads)
    x = np.random.default_rng(2).standard_normal((m, k)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((k, n)).astype(np.float32)
    got, want = session.run({"x": x})["y"], x.astype(np.float64) @ w.astype(np.float64)
    if not np.allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(k)):
        raise RuntimeError(f"Kiln's {m}x{k}x{n} GEMM differs from numpy's: max error "
                           f"{np.abs(got - want).max():.3g}")
    flops = 2.0 * m * k * n
    kiln_s = numpy_s = float("inf")
    peak = 0.0
    for _ in range(rounds):
        run_s = best_seconds(lambda: session.run({"x": x}), budget_s=0.4, clock=clock)
        kiln_s = min(kiln_s, run_s)
        numpy_s = min(numpy_s, best_seconds(lambda: x @ w, budget_s=0.4, clock=clock))
        peak = max(peak, loop.peak(seconds=run_s, reps=max(3, min(20, int(0.2 / run_s)))))
    session.close()
    return flops / kiln_s / 1e9, flops / numpy_s / 1e9, peak * threads


def main(argv: list[str] | None = None) -> int:
    """Print a markdown table of GEMM GFLOP/s beside the measured peak."""
    from kiln.targets import get_target

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", type=int, default=[256, 512, 1024, 2048])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-model-shapes", dest="model_shapes", action="store_false")
    parser.add_argument("--clock", choices=["cpu", "wall"], default=None,
                        help="cpu: the thread's CPU time (default at 1 thread); wall: elapsed")
    parser.add_argument("--output", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    clock = args.clock or ("cpu" if args.threads == 1 else "wall")
    if clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu times the calling thread only: use it with --threads 1")
    bits = get_target("host").vector_bits
    shapes = [(s, s, s) for s in args.sizes] + (MODEL_SHAPES if args.model_shapes else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="kiln-gemm-") as tmp:
        loop = PeakLoop(bits, clock, Path(tmp))
        for m, k, n in shapes:
            kiln_g, numpy_g, peak = bench_shape(m, k, n, args.threads, Path(tmp), loop, clock)
            rows.append(f"| {m}x{k}x{n} | {kiln_g:.1f} | {peak:.1f} | "
                        f"{100 * kiln_g / peak:.0f}% | {numpy_g:.1f} |")
            print(rows[-1], file=sys.stderr)
    lines = [f"Machine: {cpu_summary()}", "",
             f"Peak: a {bits}-bit FMA loop on {args.threads} thread(s), {clock} clock, "
             "measured beside each shape in repetitions as long as its GEMM.", "",
             "| M x K x N | Kiln GFLOP/s | peak GFLOP/s | Kiln % of peak | numpy GFLOP/s |",
             "|---|---|---|---|---|"] + rows
    print("\n".join(lines))
    if args.output is not None:
        command = "python -m kiln.benchmarks.gemm " + " ".join(
            argv if argv is not None else sys.argv[1:])
        args.output.write_text("# Kiln's float32 GEMM against the measured peak\n\n"
                               f"Command: `{command.strip()}`\n\n" + "\n".join(lines) + "\n")
    return 0


def _with_blas_threads(argv: list[str]) -> None:
    """Start this command again with numpy's BLAS limited to --threads threads, unless it
    already is (a BLAS reads its thread count once, when numpy is imported)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--threads", type=int, default=1)
    threads = str(parser.parse_known_args(argv)[0].threads)
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
    if all(os.environ.get(name) == threads for name in names):
        return
    env = dict(os.environ, **{name: threads for name in names})
    os.execve(sys.executable, [sys.executable, "-m", "kiln.benchmarks.gemm", *argv], env)


if __name__ == "__main__":
    _with_blas_threads(sys.argv[1:])
    sys.exit(main())
