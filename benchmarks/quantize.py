"""Kiln's own int8 quantization against float and against ONNX Runtime's quantizers, side by
side in one process.

    python -m kiln.benchmarks.quantize --threads 1 2 --profile [--output FILE.md]

For each model (ResNet-18 and MobileNetV2 of kiln.zoo, rescaled to unit variance: static
int8, calibrated on 32 seeded random images; BERT-small at seq 128: dynamic) and thread
count: Kiln float32, Kiln int8 (`quantize="int8"` / `"dynamic"`), ONNX Runtime float32 and
ONNX Runtime on the same network quantized by onnxruntime's own `quantize_static` (QDQ,
per-channel, the same calibration samples) / `quantize_dynamic`, timed alternately burst by
burst (benchmarks/models.time_alternately). Each int8 answer's cosine against ONNX
Runtime's float answer is shown beside its time; with --profile, the int8 artifact's top
groups by time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

from .. import zoo
from .machine import cpu_summary
from .models import model_inputs, ort_runner, time_alternately

MODELS = ["resnet18", "mobilenet_v2", "bert_small_random"]
CALIBRATION = 32


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _samples(feed: dict) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {k: rng.standard_normal((CALIBRATION, *v.shape)).astype(np.float32)
            for k, v in feed.items()}


def _ort_quantized(model, path: Path, samples: dict | None) -> onnx.ModelProto:
    """The model quantized by onnxruntime: quantize_static (QDQ, per channel) on `samples`,
    or quantize_dynamic where samples is None."""
    from onnxruntime.quantization import QuantFormat, quantize_dynamic, quantize_static

    source, target = path / "float.onnx", path / "ort_int8.onnx"
    onnx.save(model, source)
    if samples is None:
        quantize_dynamic(str(source), str(target))
    else:
        class Reader:
            def __init__(self):
                count = next(iter(samples.values())).shape[0]
                self.items = iter({k: v[i] for k, v in samples.items()} for i in range(count))

            def get_next(self):
                return next(self.items, None)

        quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True)
    return onnx.load(str(target))


def bench(name: str, threads_list: list[int], workdir: Path, args) -> list[dict]:
    from ..driver import compile_detailed
    from ..runtime import load

    model = zoo.load(name)
    feed, dims = model_inputs(model)
    dynamic = "input_ids" in feed
    samples = None if dynamic else _samples(feed)
    quantize = dict(quantize="dynamic") if dynamic else dict(
        quantize="int8", calibration=samples, calibrate=args.calibrate)
    folder = workdir / name
    folder.mkdir()
    ort_int8 = _ort_quantized(model, folder, samples)
    reference = ort_runner(model, 1)(feed)[0]
    rows = []
    for threads in threads_list:
        float_lib = compile_detailed(model, output=folder / f"f{threads}.so", dims=dims,
                                     threads_max=threads).library
        int8_lib = compile_detailed(model, output=folder / f"q{threads}.so", dims=dims,
                                    threads_max=threads, **quantize).library
        kiln_f, kiln_q = load(float_lib, threads=threads), load(int8_lib, threads=threads)
        runners = {"kiln_f32": lambda f, s=kiln_f: s.run(f),
                   "kiln_int8": lambda f, s=kiln_q: s.run(f),
                   "ort_f32": ort_runner(model, threads),
                   "ort_int8": ort_runner(ort_int8, threads)}
        cosine = {"kiln_int8": _cosine(next(iter(kiln_q.run(feed).values())), reference),
                  "ort_int8": _cosine(runners["ort_int8"](feed)[0], reference)}
        timings = time_alternately(runners, feed, args.warmup, args.runs, args.budget)
        row = {"model": name, "threads": threads, "mode": quantize["quantize"],
               **{k: t.median for k, t in timings.items()}, "cosine": cosine}
        if args.profile and threads == threads_list[0]:
            from ..runtime.profile import format_profile, profile
            row["profile"] = format_profile(profile(kiln_q, feed, runs=10), top=10)
        rows.append(row)
        print(render_row(row), flush=True)
    return rows


def render_row(r: dict) -> str:
    return (f"| {r['model']} ({r['mode']}) | {r['threads']} | {r['kiln_f32']:.2f} | "
            f"{r['kiln_int8']:.2f} | {r['ort_f32']:.2f} | {r['ort_int8']:.2f} | "
            f"{r['kiln_f32'] / r['kiln_int8']:.2f}x | {r['kiln_int8'] / r['ort_int8']:.2f} | "
            f"{r['cosine']['kiln_int8']:.5f} | {r['cosine']['ort_int8']:.5f} |")


def render(rows: list[dict], command: str) -> str:
    lines = [f"Command: `{command}`", "", f"Machine: {cpu_summary()}", "",
             "Median latency in ms, batch 1. speed-up: Kiln float32 / Kiln int8; vs ORT "
             "int8: Kiln int8 / ONNX Runtime int8 (below 1: Kiln faster). cosine: each int8 "
             "answer against ONNX Runtime's float32 one.", "",
             "| model | threads | Kiln f32 | Kiln int8 | ORT f32 | ORT int8 | speed-up | "
             "vs ORT int8 | cos Kiln | cos ORT |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [render_row(r) for r in rows]
    for r in rows:
        if "profile" in r:
            lines += ["", f"Kiln int8 {r['model']}, {r['threads']} thread(s), top groups:", "",
                      "```", r["profile"], "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--calibrate", default=None, help="Kiln's --calibrate (default its)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=30, help="most timed runs per runner")
    parser.add_argument("--budget", type=float, default=15.0,
                        help="seconds per model and thread count (at least 5 runs)")
    parser.add_argument("--profile", action="store_true",
                        help="each int8 artifact's top fused groups (first thread count)")
    parser.add_argument("--output", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    command = "python -m kiln.benchmarks.quantize " + " ".join(
        argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="kiln-bench-quantize-") as tmp:
        rows = [row for name in args.models for row in bench(name, args.threads, Path(tmp),
                                                             args)]
    text = render(rows, command.strip())
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
