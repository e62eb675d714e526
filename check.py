"""`kiln check`: compile a model, run it beside ONNX Runtime, and when the outputs differ,
bisect to the first node whose output diverges.

ONNX Runtime runs once with every node's output exposed: the reference for every
intermediate value. Kiln then compiles the model cut after node k (the values computed up to
node k that are still live there, node k's outputs among them, are the graph's outputs; dead
code elimination drops the rest) for a k chosen by bisection over the nodes in graph order,
and compares those values with the reference: the first node whose output diverges is named, with its op, the fused group and kernel that ran it (from the cut
artifact's manifest), its inputs' statistics and the error. An artifact for another target
runs under QEMU.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .compiler.errors import KilnError
from .driver import compile_detailed
from .frontends.onnx import load_model
from .runtime import load
from .runtime.inputs import random_feed
from .targets import get_target

#: Float outputs match when |kiln - reference| <= ATOL * scale + RTOL * |reference|, where
#: scale is the reference output's largest magnitude (at least 1e-30): an error is judged
#: against the output's own size.
RTOL, ATOL = 1e-3, 1e-4


class CheckError(KilnError, RuntimeError):
    """`kiln check` cannot compare: no ONNX Runtime, or it refuses the model."""


@dataclass
class Mismatch:
    """How one tensor of Kiln's differs from the reference."""

    name: str
    error: float          # the largest |kiln - reference|
    scale: float          # the reference's largest magnitude
    detail: str           # what differs, in words


@dataclass
class Divergence:
    """The first node whose output diverges, and what ran it."""

    node: str
    op: str
    group: str
    kernel: str
    inputs: list[str]     # "name: shape dtype, min .. max, mean, std" of each input
    mismatches: list[Mismatch]


@dataclass
class CheckReport:
    """What `kiln check` found: each output's error, and the first diverging node if any."""

    target: str
    outputs: dict[str, Mismatch | None] = field(default_factory=dict)
    divergence: Divergence | None = None
    compiles: int = 0

    @property
    def ok(self) -> bool:
        return all(m is None for m in self.outputs.values())


def compare(name: str, actual: np.ndarray, expected: np.ndarray) -> Mismatch | None:
    """None when `actual` matches `expected` (floats within tolerance of the output's scale,
    NaN where NaN; everything else exactly), else how it differs."""
    if actual.shape != expected.shape:
        return Mismatch(name, float("inf"), 0.0, f"shape {actual.shape} != {expected.shape}")
    if expected.size == 0:
        return None
    if np.issubdtype(expected.dtype, np.floating):
        a, e = actual.astype(np.float64), expected.astype(np.float64)
        scale = max(float(np.nanmax(np.abs(np.where(np.isinf(e), 0, e)), initial=0.0)), 1e-30)
        nan_differs = np.isnan(a) != np.isnan(e)
        diff = np.abs(np.nan_to_num(a - e, nan=0.0, posinf=np.inf, neginf=np.inf))
        same_inf = np.isinf(a) & np.isinf(e) & (np.sign(a) == np.sign(e))
        diff = np.where(same_inf, 0.0, diff)
        bad = nan_differs | (diff > ATOL * scale + RTOL * np.abs(np.nan_to_num(e)))
        error = float(diff.max())
        if not bad.any():
            return None
        where = np.unravel_index(int(np.argmax(np.where(bad, diff, -1))), e.shape)
        return Mismatch(name, error, scale,
                        f"{int(bad.sum())} of {e.size} elements off; the largest error "
                        f"{error:.3g} is {error / scale:.3g} of the output's scale {scale:.3g} "
                        f"(at {list(map(int, where))}: {a[where]:.6g} vs {e[where]:.6g})")
    if np.array_equal(actual, expected):
        return None
    bad = actual != expected
    return Mismatch(name, float(bad.sum()), 0.0,
                    f"{int(bad.sum())} of {expected.size} elements differ")


def _statistics(name: str, value: np.ndarray) -> str:
    head = f"{name}: {list(value.shape)} {value.dtype}"
    if value.size == 0 or not (np.issubdtype(value.dtype, np.number)):
        return head
    v = value.astype(np.float64)
    return (f"{head}, min {np.nanmin(v):.4g} max {np.nanmax(v):.4g} mean {np.nanmean(v):.4g} "
            f"std {np.nanstd(v):.4g}")


def _with_outputs(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of `model` whose graph outputs are `names` (typed where inference knows)."""
    cut = onnx.ModelProto()
    cut.CopyFrom(model)
    known = {v.name: v for v in list(model.graph.value_info) + list(model.graph.output)
             + list(model.graph.input)}
    del cut.graph.output[:]
    for name in names:
        info = onnx.ValueInfoProto()
        if name in known:
            info.CopyFrom(known[name])
        else:
            info.name = name
        cut.graph.output.append(info)
    return cut


def _perturbed(model: onnx.ModelProto, node_name: str) -> onnx.ModelProto:
    """`model` with 1 added to the first output of node `node_name`: a fault that Kiln
    compiles and ONNX Runtime does not see (check's own test hook)."""
    faulty = onnx.ModelProto()
    faulty.CopyFrom(model)
    graph = faulty.graph
    index = next((i for i, n in enumerate(graph.node) if n.name == node_name), None)
    if index is None:
        raise CheckError(f"perturb: the model has no node named {node_name!r}")
    node = graph.node[index]
    target = node.output[0]
    raw = f"{target}__kiln_unperturbed"
    node.output[0] = raw
    one = helper.make_tensor(f"{raw}_one", onnx.TensorProto.FLOAT, [], [1.0])
    graph.initializer.append(one)
    graph.node.insert(index + 1, helper.make_node("Add", [raw, one.name], [target],
                                                  name=f"{node_name}__kiln_perturb"))
    return faulty


def _reference_values(model: onnx.ModelProto, feed: Mapping[str, np.ndarray]
                      ) -> dict[str, np.ndarray]:
    """ONNX Runtime's value of every node output (and graph output) on `feed`."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise CheckError("kiln check compares against ONNX Runtime: pip install onnxruntime"
                         ) from None
    names = list(dict.fromkeys(o for n in model.graph.node for o in n.output if o))
    exposed = _with_outputs(model, names)
    for info in exposed.graph.output:   # ONNX Runtime takes outputs by name alone
        info.ClearField("type")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(exposed.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        values = session.run(names, dict(feed))
    except Exception as exc:   # ONNX Runtime's own errors have no common base class
        raise CheckError(f"ONNX Runtime cannot run the model: {exc}") from None
    return dict(zip(names, values))


class _Runner:
    """Compiles and runs cuts of one model for one target, counting compiles."""

    def __init__(self, model: onnx.ModelProto, target: str, workdir: Path,
                 options: Mapping[str, Any]):
        self.model, self.target, self.workdir = model, target, workdir
        self.options = dict(options)
        self.emulator = None if get_target(target).is_host else "qemu"
        self.compiles = 0

    def compile(self, outputs: Sequence[str]) -> Path:
        self.compiles += 1
        library = self.workdir / f"cut{self.compiles}.so"
        compile_detailed(_with_outputs(self.model, outputs), self.target, library,
                         **self.options)
        return library

    def run(self, outputs: Sequence[str], feed: Mapping[str, np.ndarray]
            ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        with load(self.compile(outputs), threads=1, emulator=self.emulator) as session:
            names = {t.name for t in session.inputs}
            values = session.run({k: v for k, v in feed.items() if k in names})
            return values, session.manifest or {}


def check_model(model: Any, target: str = "host", dims: Mapping[str, int] | None = None,
                shapes: Mapping[str, Sequence[int]] | None = None,
                consts: Mapping[str, Any] | None = None,
                inputs: Mapping[str, np.ndarray] | None = None, seed: int = 0,
                perturb: str | None = None) -> CheckReport:
    """Compile `model` for `target`, run it beside ONNX Runtime on `inputs` (random where
    not given; `seed`), and bisect to the first diverging node if an output differs.
    `perturb` (for testing check itself) adds 1 to one node's output in what Kiln compiles."""
    reference_model = load_model(model)
    proto = reference_model if perturb is None else _perturbed(reference_model, perturb)
    try:
        proto = onnx.shape_inference.infer_shapes(proto)
    except Exception:   # inference only types the cuts' outputs; Kiln infers on its own
        pass
    options: dict[str, Any] = {"dims": dims, "shapes": shapes, "consts": consts}
    report = CheckReport(get_target(target).name)
    with tempfile.TemporaryDirectory(prefix="kiln-check-") as tmp:
        runner = _Runner(proto, target, Path(tmp), options)
        graph_outputs = [o.name for o in proto.graph.output]
        with load(runner.compile(graph_outputs), threads=1, emulator=runner.emulator) as session:
            feed = random_feed(session.inputs, inputs or {}, seed, integer_high=1)
            values = session.run({t.name: feed[t.name] for t in session.inputs})
        ort_feed = dict(feed)
        declared = {i.name: i.type.tensor_type.elem_type for i in reference_model.graph.input}
        for name, value in (consts or {}).items():
            dtype = helper.tensor_dtype_to_np_dtype(declared[name]) if declared.get(name) \
                else None
            ort_feed[name] = np.asarray(value, dtype)
        reference = _reference_values(reference_model, ort_feed)
        for name in graph_outputs:
            report.outputs[name] = compare(name, values[name], reference[name])
        if not report.ok:
            report.divergence = _bisect(runner, reference_model, reference, feed)
        report.compiles = runner.compiles
    return report


def _live_after(nodes: Sequence[onnx.NodeProto], graph_outputs: set[str],
                reference: Mapping[str, np.ndarray]) -> list[list[str]]:
    """For each k, the values computed by nodes[0..k] that are still needed after node k (read
    by a later node or a graph output), node k's own outputs first: what a cut after node k
    exposes. Comparing all of them makes "some value computed so far diverges" monotone in k,
    so bisection finds the first diverging node on branching graphs too."""
    last_use: dict[str, int] = {}
    for k, node in enumerate(nodes):
        for name in node.input:
            last_use[name] = k
    live: list[list[str]] = []
    open_values: list[str] = []
    for k, node in enumerate(nodes):
        own = [o for o in node.output if o in reference]
        open_values = [v for v in open_values if last_use.get(v, -1) > k or v in graph_outputs]
        live.append(own + open_values)
        open_values += [o for o in own if last_use.get(o, -1) > k or o in graph_outputs]
    return live


def _bisect(runner: _Runner, reference_model: onnx.ModelProto,
            reference: Mapping[str, np.ndarray], feed: Mapping[str, np.ndarray]
            ) -> Divergence | None:
    """The first node (in graph order) whose output diverges from the reference: the first
    cut at which a value computed so far diverges, named by the value's producer."""
    nodes = [n for n in reference_model.graph.node
             if any(o in reference for o in n.output)]
    producer = {o: n for n in nodes for o in n.output}
    live = _live_after(nodes, {o.name for o in reference_model.graph.output}, reference)
    found: tuple[onnx.NodeProto, list[Mismatch], dict[str, Any]] | None = None
    low, high = 0, len(nodes) - 1
    while low <= high:
        middle = (low + high) // 2
        values, manifest = runner.run(live[middle], feed)
        mismatches = [m for m in (compare(o, values[o], reference[o]) for o in live[middle])
                      if m is not None]
        if mismatches:
            node = nodes[middle]
            own = [m for m in mismatches if m.name in node.output]
            found = (node, own, manifest) if own else \
                (producer[mismatches[0].name], mismatches, manifest)
            high = middle - 1
        else:
            low = middle + 1
    if found is None:
        return None
    node, mismatches, manifest = found
    group, kernel = "?", "?"
    for entry in (manifest.get("levels") or [{}])[-1].get("schedules", []):
        if any(n == node.name or n.startswith(node.name + "/") for n in entry.get("nodes", [])):
            group, kernel = entry["group"], entry["kernel"]
            break
    known = {t.name: t for t in reference_model.graph.initializer}
    stats = []
    for name in node.input:
        if name in feed or name in reference:
            stats.append(_statistics(name, np.asarray(feed.get(name, reference.get(name)))))
        elif name in known:
            stats.append(_statistics(name, numpy_helper.to_array(known[name])) + " (weight)")
    return Divergence(node.name, node.op_type, group, kernel, stats, mismatches)


def describe(report: CheckReport) -> str:
    """The report as `kiln check` prints it."""
    lines = []
    for name, mismatch in report.outputs.items():
        lines.append(f"output {name}: " + ("matches ONNX Runtime" if mismatch is None
                                           else f"DIFFERS: {mismatch.detail}"))
    if report.ok:
        lines.append(f"clean bill: every output matches ONNX Runtime on {report.target} "
                     f"(rtol {RTOL}, atol {ATOL} of each output's scale)")
        return "\n".join(lines)
    d = report.divergence
    if d is None:
        lines.append("no cut of the graph diverges on its own: the difference appears only "
                     "when the whole graph is compiled (a fusion across the cuts); please "
                     "report it with the model")
        return "\n".join(lines)
    lines.append(f"first diverging node: {d.node} ({d.op}), run by group {d.group} "
                 f"(kernel {d.kernel})")
    lines += [f"  input {s}" for s in d.inputs]
    lines += [f"  output {m.name}: {m.detail}" for m in d.mismatches]
    lines.append(f"({report.compiles} compiles)")
    return "\n".join(lines)
