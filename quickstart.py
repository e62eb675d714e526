"""Quickstart: compile a real CNN with Kiln, run it from Python, check it against ONNX Runtime.

    python -m kiln.quickstart [--model resnet18] [--threads 1] [--out build/]

Uses one of Kiln's example models (`kiln.zoo`: architecture exported from torchvision, weights
regenerated deterministically), writes OUT/<model>.so and OUT/<model>.h, and prints the
largest difference from ONNX Runtime and both latencies.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import kiln
import numpy as np
from kiln import zoo
from kiln.runtime import load


def median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", choices=zoo.CNN_MODELS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", default="build")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = zoo.load(args.model)
    start = time.perf_counter()
    library = kiln.compile(model, target="host", output=str(out / f"{args.model}.so"),
                           dims={"batch": 1})
    print(f"compiled {args.model} -> {library} in {time.perf_counter() - start:.2f} s")

    session = load(library, threads=args.threads)
    (spec,) = session.inputs
    x = np.random.default_rng(0).standard_normal(spec.shape).astype(spec.dtype)
    (result,) = session.run({spec.name: x}).values()
    print(f"output {result.dtype}{list(result.shape)}, top class {int(result.argmax())}")

    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed: skipping the comparison with it "
              "(pip install onnxruntime)")
        session.close()
        return 0
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    reference = ort.InferenceSession(model.SerializeToString(), options,
                                     providers=["CPUExecutionProvider"])
    (expected,) = reference.run(None, {spec.name: x})
    error = float(np.abs(result - expected).max())
    ok = np.allclose(result, expected, rtol=1e-3, atol=1e-4)
    print(f"max |kiln - onnxruntime| = {error:.3g} ({'match' if ok else 'MISMATCH'})")
    kiln_ms = median_ms(lambda: session.run({spec.name: x}), args.runs)
    ort_ms = median_ms(lambda: reference.run(None, {spec.name: x}), args.runs)
    print(f"latency at {args.threads} thread(s): kiln {kiln_ms:.2f} ms, onnxruntime "
          f"{ort_ms:.2f} ms")
    session.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
