"""Kiln's generated float32 GEMM against the machine's measured peak and numpy's BLAS.

    python -m kiln.benchmarks.gemm [--sizes 256 512 1024 2048] [--threads 1] [--clock cpu]

Each size S compiles one MatMul [S, S] x [S, S] (B a constant, so packed at compile time)
and reports the best of several timed runs in GFLOP/s; the peak comes from an FMA loop with
independent accumulators compiled for this host; numpy runs the same product. Measure numpy
with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (DESIGN.md: they halve its speed here), and OPENBLAS_NUM_THREADS=1
for a one-thread comparison.

`--clock cpu` (the default at one thread) times with the calling thread's CPU clock, the peak
loop included: on a shared machine, time spent descheduled then counts for none of them, so
the ratio to peak stays meaningful under load. `--clock wall` times elapsed time (always
used with several threads, whose work runs on other threads).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .machine import cpu_summary

#: GEMM shapes (M, K, N) that occur in the test models at batch 1 (BERT at seq 128).
MODEL_SHAPES = [(128, 256, 256), (128, 256, 1024), (128, 1024, 256), (64, 576, 3136),
                (128, 1152, 784), (256, 2304, 196), (512, 4608, 49)]

_PEAK_C = r"""
#include <stdio.h>
#include <time.h>
typedef float v __attribute__((vector_size(VBYTES)));
int main(void) {
    v z = {0};   /* distinct starting values: the compiler must keep 12 chains */
    v a0 = z + 0.1f, a1 = z + 0.2f, a2 = z + 0.3f, a3 = z + 0.4f, a4 = z + 0.5f,
      a5 = z + 0.6f, a6 = z + 0.7f, a7 = z + 0.8f, a8 = z + 0.9f, a9 = z + 1.1f,
      a10 = z + 1.2f, a11 = z + 1.3f;
    v x = z + 0.9999f, y = z + 0.0001f;
    long iters = 4000000L / (VBYTES / 4);   /* ~2 ms a repetition: the best of 100 */
    double best = 1e30;
    for (int rep = 0; rep < 100; rep++) {
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


def measured_peak(vector_bits: int, clock: str = "wall") -> float:
    """Single-core fp32 GFLOP/s of an FMA loop (12 independent accumulators, best of many
    short repetitions, like the GEMM timings), timed by the
    thread's CPU clock (clock="cpu") or elapsed time."""
    clock_id = "CLOCK_THREAD_CPUTIME_ID" if clock == "cpu" else "CLOCK_MONOTONIC"
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "peak.c", Path(tmp) / "peak"
        src.write_text(_PEAK_C.replace("VBYTES", str(vector_bits // 8))
                       .replace("CLOCK", clock_id))
        subprocess.run(["cc", "-O2", "-march=native", str(src), "-o", str(exe)], check=True)
        runs = [float(subprocess.run([str(exe)], capture_output=True, text=True,
                                     check=True).stdout.split()[0]) for _ in range(5)]
    return max(runs)


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
    calling thread's CPU time (clock="cpu") or elapsed time."""
    now = time.thread_time if clock == "cpu" else time.perf_counter
    fn()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < min_runs or time.perf_counter() < deadline:
        start = now()
        fn()
        times.append(now() - start)
    return min(times)


def bench_shape(m: int, k: int, n: int, threads: int, workdir: Path, clock: str = "wall"
                ) -> tuple[float, float]:
    """(Kiln GFLOP/s, numpy GFLOP/s) for one shape."""
    import kiln
    from kiln.runtime import load

    path = kiln.compile(gemm_model(m, k, n), output=workdir / f"gemm_{m}_{k}_{n}.so")
    session = load(path, threads=threads)
    x = np.random.default_rng(2).standard_normal((m, k)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((k, n)).astype(np.float32)
    flops = 2.0 * m * k * n
    kiln_s = best_seconds(lambda: session.run({"x": x}), clock=clock)
    numpy_s = best_seconds(lambda: x @ w, clock=clock)
    session.close()
    return flops / kiln_s / 1e9, flops / numpy_s / 1e9


def main(argv: list[str] | None = None) -> int:
    """Print a markdown table of GEMM GFLOP/s beside the measured peak."""
    from kiln.targets import get_target

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", type=int, default=[256, 512, 1024, 2048])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-model-shapes", dest="model_shapes", action="store_false")
    parser.add_argument("--clock", choices=["cpu", "wall"], default=None,
                        help="cpu: the thread's CPU time (default at 1 thread); wall: elapsed")
    args = parser.parse_args(argv)
    clock = args.clock or ("cpu" if args.threads == 1 else "wall")
    if clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu times the calling thread only: use it with --threads 1")
    bits = get_target("host").vector_bits
    peak = measured_peak(bits, clock) * args.threads
    shapes = [(s, s, s) for s in args.sizes] + (MODEL_SHAPES if args.model_shapes else [])
    lines = [f"Machine: {cpu_summary()}", "",
             f"Measured peak ({bits}-bit FMA loop, {args.threads} thread(s), {clock} clock): "
             f"{peak:.1f} GFLOP/s", "",
             "| M x K x N | Kiln GFLOP/s | % of peak | numpy GFLOP/s |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="kiln-gemm-") as tmp:
        for m, k, n in shapes:
            kiln_g, numpy_g = bench_shape(m, k, n, args.threads, Path(tmp), clock)
            lines.append(f"| {m}x{k}x{n} | {kiln_g:.1f} | {100 * kiln_g / peak:.0f}% | "
                         f"{numpy_g:.1f} |")
            print(lines[-1], file=sys.stderr)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
