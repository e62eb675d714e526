"""Kiln's int8 GEMM (QLinearMatMul by a constant int8 weight) against the VNNI peak and ONNX
Runtime.

    python -m kiln.benchmarks.gemm_int8 [--sizes 512 1024 2048] [--threads 1] [--cpu native]

Each size S compiles one QLinearMatMul uint8 [S, S] x int8 [S, S] -> uint8 (per-tensor
scales, the weight a constant) and reports the best of several timed runs in GOP/s (2 * S^3
integer operations per product); ONNX Runtime runs the same model in the same process. The
peak comes from a loop of 12 independent vpdpbusd chains (64 multiply-adds each) compiled for
this host, measured beside each shape as benchmarks/gemm.py measures the FMA peak. `--cpu
x86-64-v4` builds for a CPU without VNNI (the portable integer loops). Elapsed time
throughout (ONNX Runtime's threads are not the calling thread).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .gemm import best_seconds
from .machine import cpu_summary

_PEAK_C = r"""
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
int main(int argc, char **argv) {
    __m512i a[12];
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_epi32(i);
    __m512i x = _mm512_set1_epi32(0x01020304), y = _mm512_set1_epi32(0x05060708);
    long iters = argc > 1 ? atol(argv[1]) : 1000000L;
    int reps = argc > 2 ? atoi(argv[2]) : 20;
    double best = 1e30;
    for (int rep = 0; rep < reps; rep++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long i = 0; i < iters; i++) {
            __asm__ volatile("" : "+v"(x));
            a[0] = _mm512_dpbusd_epi32(a[0], x, y); a[1] = _mm512_dpbusd_epi32(a[1], x, y);
            a[2] = _mm512_dpbusd_epi32(a[2], x, y); a[3] = _mm512_dpbusd_epi32(a[3], x, y);
            a[4] = _mm512_dpbusd_epi32(a[4], x, y); a[5] = _mm512_dpbusd_epi32(a[5], x, y);
            a[6] = _mm512_dpbusd_epi32(a[6], x, y); a[7] = _mm512_dpbusd_epi32(a[7], x, y);
            a[8] = _mm512_dpbusd_epi32(a[8], x, y); a[9] = _mm512_dpbusd_epi32(a[9], x, y);
            a[10] = _mm512_dpbusd_epi32(a[10], x, y); a[11] = _mm512_dpbusd_epi32(a[11], x, y);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
        if (secs < best) best = secs;
    }
    __m512i s = a[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_epi32(s, a[i]);
    printf("%f %d\n", 2.0 * 12 * 64 * iters / best / 1e9, _mm512_reduce_add_epi32(s));
    return 0;
}
"""


class VnniPeak:
    """The vpdpbusd loop compiled for this host; peak(seconds) runs repetitions about that
    long and returns GOP/s (one vpdpbusd: 64 multiply-adds, 128 operations)."""

    def __init__(self, workdir: Path):
        src, self.exe = workdir / "vnni_peak.c", workdir / "vnni_peak"
        src.write_text(_PEAK_C)
        subprocess.run(["cc", "-O2", "-march=native", str(src), "-o", str(self.exe)],
                       check=True)

    def peak(self, seconds: float = 0.002, reps: int = 20) -> float:
        iters = max(1000, int(seconds * 1000e9 / (2 * 12 * 64)))
        out = subprocess.run([str(self.exe), str(iters), str(reps)], capture_output=True,
                             text=True, check=True).stdout
        return float(out.split()[0])


def int8_gemm_model(size: int):
    """QLinearMatMul uint8 x[size, size] @ int8 W[size, size] -> uint8, W a constant."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(1).integers(-128, 128, (size, size)).astype(np.int8)
    inits = {"xs": np.float32(0.02), "xz": np.uint8(128), "W": w, "ws": np.float32(0.004),
             "wz": np.int8(0), "ys": np.float32(0.02 * 0.004 * 40 * np.sqrt(size)),
             "yz": np.uint8(128)}
    node = helper.make_node("QLinearMatMul", ["x", "xs", "xz", "W", "ws", "wz", "ys", "yz"],
                            ["y"])
    graph = helper.make_graph(
        [node], "gemm_int8",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [size, size])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def bench_size(size: int, threads: int, cpu: str, workdir: Path, loop: VnniPeak,
               rounds: int = 3) -> tuple[float, float, float, str]:
    """(Kiln GOP/s, ONNX Runtime GOP/s, peak GOP/s, Kiln's kernel) for one size; Kiln's
    output must equal ONNX Runtime's."""
    import onnxruntime as ort

    import kiln
    from kiln.runtime import load
    from kiln.runtime.manifest import read_manifest

    model = int8_gemm_model(size)
    path = kiln.compile(model, output=workdir / f"gemm_int8_{size}.so", cpu=cpu,
                        threads_max=threads)
    kernel = read_manifest(path)["levels"][0]["schedules"][0]["kernel"]
    session = load(path, threads=threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    peer = ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).integers(0, 256, (size, size)).astype(np.uint8)
    got, want = session.run({"x": x})["y"], peer.run(None, {"x": x})[0]
    if not np.array_equal(got, want):
        raise RuntimeError(f"Kiln's int8 {size}^3 GEMM differs from ONNX Runtime's in "
                           f"{np.count_nonzero(got != want)} elements")
    ops = 2.0 * size ** 3
    kiln_s = ort_s = float("inf")
    peak = 0.0
    for _ in range(rounds):
        run_s = best_seconds(lambda: session.run({"x": x}), budget_s=0.4)
        kiln_s = min(kiln_s, run_s)
        ort_s = min(ort_s, best_seconds(lambda: peer.run(None, {"x": x}), budget_s=0.4))
        peak = max(peak, loop.peak(seconds=run_s, reps=max(3, min(20, int(0.2 / run_s)))))
    session.close()
    return ops / kiln_s / 1e9, ops / ort_s / 1e9, peak * threads, kernel


def main(argv: list[str] | None = None) -> int:
    """Print a markdown table of int8 GEMM GOP/s beside the VNNI peak and ONNX Runtime."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", type=int, default=[512, 1024, 2048])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cpu", default="native", help="the CPU Kiln builds for")
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kiln-gemm-int8-") as tmp:
        loop = VnniPeak(Path(tmp))
        for size in args.sizes:
            kiln_g, ort_g, peak, kernel = bench_size(size, args.threads, args.cpu, Path(tmp),
                                                     loop)
            rows.append(f"| {size}^3 | {kernel} | {kiln_g:.0f} | {peak:.0f} | "
                        f"{100 * kiln_g / peak:.0f}% | {ort_g:.0f} | {kiln_g / ort_g:.2f} |")
            print(rows[-1], file=sys.stderr)
    lines = [f"Machine: {cpu_summary()}", "",
             f"Peak: 12 independent vpdpbusd chains on {args.threads} thread(s), measured "
             "beside each size in repetitions as long as its GEMM; --cpu " + args.cpu + ".", "",
             "| M = K = N | Kiln kernel | Kiln GOP/s | VNNI peak GOP/s | Kiln % of peak | "
             "ORT GOP/s | Kiln / ORT |", "|---|---|---|---|---|---|---|"] + rows
    print("\n".join(lines))
    if args.output is not None:
        args.output.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
