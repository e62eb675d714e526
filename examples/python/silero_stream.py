"""Run Silero VAD as a stream with a Kiln artifact, and check it against ONNX Runtime.

Silero VAD is stateful: each call takes 512 samples (32 ms at 16 kHz) and the state the
previous call returned, and gives a speech probability and the next state. The sample rate is
pinned at compile time (`consts={"sr": 16000}`), so the model's If on `sr` folds away and the
artifact takes only `input` and `state`.

    python examples/python/silero_stream.py --model silero_vad.onnx [--seconds 3]

The model comes with the silero-vad wheel (`pip download --no-deps silero-vad==6.2.3`, then
unzip: silero_vad/data/silero_vad.onnx). The signal is synthetic: noise, with bursts of a
voiced, harmonic tone every other half second.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import kiln
from kiln.runtime import load

RATE, CHUNK = 16000, 512


def synthetic_signal(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise with voiced-like bursts (a 140 Hz harmonic stack, amplitude-modulated)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    envelope = (np.sin(2 * np.pi * 1.0 * t) > 0) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    return (0.3 * voiced * envelope + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="silero_vad.onnx (any of the wheel's)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", help="folder for the artifact (default: a temporary one)")
    parser.add_argument("--rtol", type=float, default=1e-3)
    parser.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args(argv)

    import onnxruntime as ort

    folder = Path(args.out or tempfile.mkdtemp(prefix="kiln-silero-"))
    library = kiln.compile(args.model, output=str(folder / "silero.so"),
                           shapes={"input": (1, CHUNK), "state": (2, 1, 128)},
                           consts={"sr": RATE})
    session = load(library, threads=1)
    print("inputs:", ", ".join(f"{s.name} {s.dtype}{list(s.shape)}" for s in session.inputs))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    reference = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])

    signal = synthetic_signal(args.seconds)
    state = np.zeros((2, 1, 128), np.float32)
    ref_state = state.copy()
    worst, matches = 0.0, True
    for index in range(signal.size // CHUNK):
        chunk = signal[index * CHUNK:(index + 1) * CHUNK][None, :]
        prob, state = session.run({"input": chunk, "state": state}).values()
        ref_prob, ref_state = reference.run(None, {"input": chunk, "state": ref_state,
                                                   "sr": np.array(RATE, np.int64)})
        for mine, theirs in ((prob, ref_prob), (state, ref_state)):
            worst = max(worst, float(np.abs(mine - theirs).max()))
            matches &= bool(np.allclose(mine, theirs, rtol=args.rtol, atol=args.atol))
        bar = "#" * int(round(float(prob[0, 0]) * 40))
        print(f"{index * CHUNK / RATE:6.2f} s  p={float(prob[0, 0]):.4f}  "
              f"ort={float(ref_prob[0, 0]):.4f}  {bar}")
    print(f"max difference from ONNX Runtime over the stream: {worst:.3g}")
    if not matches:
        print(f"MISMATCH: outside rtol {args.rtol}, atol {args.atol}", file=sys.stderr)
        return 1
    print("(match)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
