"""Run a Kiln-compiled model from Python on random inputs, and optionally check it against
ONNX Runtime.

    kiln compile model.onnx --target host -o model.so
    python run_model.py model.so [--onnx model.onnx] [--threads N] [--seed S]

Inputs are drawn per Session.inputs (floats from a normal distribution, integers from [0, 10),
booleans at random). With --onnx the same inputs go through ONNX Runtime and every output is
compared (floats: rtol 1e-3, atol 1e-4; others exactly); the exit status is 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import kiln.runtime


def random_inputs(session, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feed = {}
    for t in session.inputs:
        if t.dtype.kind == "f":
            feed[t.name] = rng.standard_normal(t.shape).astype(t.dtype)
        elif t.dtype.kind == "b":
            feed[t.name] = rng.integers(0, 2, size=t.shape).astype(bool)
        else:
            feed[t.name] = rng.integers(0, 10, size=t.shape).astype(t.dtype)
    return feed


def describe(name: str, a: np.ndarray) -> str:
    flat = a.reshape(-1)
    head = " ".join(f"{v:.6g}" if a.dtype.kind == "f" else str(v) for v in flat[:6])
    more = " ..." if flat.size > 6 else ""
    stats = f"  (min {flat.min():.6g}, max {flat.max():.6g})" if flat.size else ""
    return f"{name}: {a.dtype} {a.shape} = {head}{more}{stats}"


def compare_with_onnxruntime(onnx_path: str, feed, outputs) -> bool:
    import onnxruntime as ort

    ref_session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    names = [o.name for o in ref_session.get_outputs()]
    reference = dict(zip(names, ref_session.run(names, feed)))
    ok = True
    for name, got in outputs.items():
        want = np.asarray(reference[name])
        if got.dtype.kind == "f":
            diff = np.abs(got.astype(np.float64) - want).max(initial=0.0)
            close = np.allclose(got, want, rtol=1e-3, atol=1e-4)
            print(f"  {name}: max abs difference {diff:.3g} -> {'ok' if close else 'MISMATCH'}")
        else:
            close = got.shape == want.shape and np.array_equal(got, want)
            print(f"  {name}: {'equal' if close else 'MISMATCH'}")
        ok &= close
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", help="the compiled model (.so)")
    parser.add_argument("--onnx", help="the ONNX model it was compiled from, to compare with")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: all CPUs)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        session = kiln.runtime.load(args.artifact, threads=args.threads)
    except kiln.KilnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with session:
        print(f"model {session.name!r} from {args.artifact}")
        feed = random_inputs(session, args.seed)
        for name, a in feed.items():
            print("input  " + describe(name, a))
        outputs = session.run(feed)
        for name, a in outputs.items():
            print("output " + describe(name, a))
    if args.onnx:
        print(f"compared with ONNX Runtime on {args.onnx}:")
        if not compare_with_onnxruntime(args.onnx, feed, outputs):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
