"""Kernel selection: one decision per conv, pair or group, from a schedule file or the rules.

A KernelSelector answers the passes' questions (compiler/kernel_choice.py) and, after
fusion, select_kernels records a kernel and a schedule on every group the registry runs.
Each decision is made once, at the stage the graph first depends on it (registry.py),
either from a schedule file line with the same signature or by trying the op's entries in
order; later stages read the record.

A signature is what the decision depends on: the nodes (ops, attributes, input and output
shapes and dtypes, which inputs are constants and which are shared; a conv's per-channel bias
is left out, a commutative op's operands are sorted), the target, the CPU
and the vector width. Schedule files are JSON lines, one per group, as --dump-schedule
writes them:

    {"group": "conv1", "kernel": "conv_nhwc_gemm", "target": "x86_64", "cpu": "native",
     "vector_bits": 512, "signature": {...}, "schedule": {"mr": 14, "nv": 2, ...}}

`group` is for the reader; lines are matched by signature, so one file serves every model
with the same layers. A line whose "schedule" is null chooses the kernel and keeps its
default schedule.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ...compiler.ir import FusedGroup, Graph, Node, Value
from ...compiler.kernel_choice import KernelDecision
from ...compiler.ops import op_def
from ..schedules import KernelTarget, ScheduleError, as_dict, from_dict
from .registry import KERNELS, Kernel, kernels_for, registered_ops


def node_signature(node: Node) -> dict[str, Any]:
    """What a kernel decision may read of one node."""
    def tensor(v: Value) -> dict[str, Any]:
        entry: dict[str, Any] = {"shape": list(v.shape), "dtype": v.dtype.name}
        if v.is_constant:
            entry["constant"] = True
        if len({id(u) for u in v.users}) > 1:
            entry["shared"] = True
        return entry

    inputs = [tensor(v) for v in _decision_inputs(node)]
    if op_def(node.op).commutative:   # x + bias and bias + x decide alike
        inputs.sort(key=lambda entry: json.dumps(entry, sort_keys=True))
    return {"op": node.op, "attrs": {k: _jsonable(v) for k, v in sorted(node.attrs.items())},
            "inputs": inputs,
            "outputs": [tensor(v) for v in node.outputs]}


def _decision_inputs(node: Node) -> list[Value]:
    """The inputs a kernel decision reads. A conv's constant bias of one value per output
    channel is only added in the epilogue, whichever kernel runs the conv, so convs with and
    without one share schedule lines and tuning records (the same network exported twice often
    differs just there: a folded BatchNorm leaves a bias, a bias-free export none)."""
    if node.op == "conv2d" and len(node.inputs) == 3:
        bias, weight = node.inputs[2], node.inputs[1]
        if bias.is_constant and bias.shape == (weight.shape[0],):
            return node.inputs[:2]
    return list(node.inputs)


def group_signature(nodes: Iterable[Node]) -> dict[str, Any]:
    return {"nodes": [node_signature(n) for n in nodes]}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


@dataclass(frozen=True)
class _Line:
    where: str
    kernel: str
    schedule: Any


class KernelSelector:
    """Kernel decisions for one compilation: the target, the thread budget, the schedule
    file's lines (if any), and every decision made so far."""

    def __init__(self, target: KernelTarget, target_name: str = "", cpu: str = "native",
                 schedule_lines: Iterable[tuple[str, dict[str, Any]]] = ()):
        self.target = target
        self.vector_bits = target.vector_bits
        self.target_name = target_name
        self.cpu = cpu
        self.replay: dict[str, _Line] = {}
        for where, line in schedule_lines:
            self._add_line(where, line)
        self._layout: dict[str, KernelDecision | None] = {}   # conv node name -> decision
        self._pairs: dict[str, KernelDecision] = {}           # 1x1 conv name -> its pair's
        #: signature key -> every kernel that could run it, the chosen one first: the kernel
        #: choices `kiln tune` may try
        self.alternatives: dict[str, list[str]] = {}

    # -- the passes' questions -------------------------------------------------------------
    def conv_kernel(self, node: Node) -> KernelDecision | None:
        if node.name not in self._layout:
            self._layout[node.name] = self._decide(FusedGroup(node.name, [node]), "layout")
        return self._layout[node.name]

    def fuses_into_depthwise(self, pw: Node, between: list[Node], dw: Node) -> bool:
        first, second = self._layout.get(pw.name), self._layout.get(dw.name)
        if first is None or second is None or first.kernel != "conv_nhwc_gemm" \
                or second.kernel != "conv_nhwc_depthwise":
            return False
        decision = self._decide(FusedGroup(pw.name, [pw, *between, dw]), "fusion")
        if decision is not None:
            self._pairs[pw.name] = decision
        return decision is not None

    # -- after fusion ------------------------------------------------------------------------
    def group_decision(self, group: FusedGroup) -> KernelDecision:
        """The kernel and schedule of one fused group, recorded earlier or decided now."""
        anchor = group.anchor
        if anchor.name in self._pairs and any(n.op == "conv2d" for n in group.nodes[1:]):
            decision = self._pairs[anchor.name]
        elif anchor.attrs.get("layout") == "NHWC" and kernels_for(anchor.op, "layout"):
            decision = self._layout.get(anchor.name)   # NHWC because of that decision
            if decision is None:
                raise AssertionError(f"NHWC {anchor.op} {anchor.name} has no kernel decision")
        else:
            decision = self._decide(group, "group")
            assert decision is not None, f"no kernel runs {anchor.op}: the registry ends " \
                                         f"with a portable entry for every op it serves"
        kernel = KERNELS[decision.kernel]
        replayed = decision.schedule is not None
        schedule = decision.schedule if replayed else kernel.default(group, self.target)
        misfit = kernel.fits(group, self.target, schedule)
        if misfit is not None:
            source = self.replay[decision.key].where if replayed else "its default schedule"
            raise ScheduleError(f"group '{group.name}' ({anchor.op}): the schedule from "
                                f"{source} does not fit kernel {kernel.name}: {misfit}")
        return dataclasses.replace(decision, schedule=schedule)

    # -- one decision ------------------------------------------------------------------------
    def _key(self, signature: dict[str, Any]) -> str:
        return _key(signature, self.target_name, self.cpu, self.vector_bits)

    def _available(self, kernel: Kernel) -> bool:
        return self.vector_bits >= kernel.min_vector_bits \
            and set(kernel.features) <= self.target.features

    def _decide(self, group: FusedGroup, stage: str) -> KernelDecision | None:
        signature = group_signature(group.nodes)
        key = self._key(signature)
        line = self.replay.get(key)
        if line is not None:
            return self._replayed(group, stage, key, signature, line)
        applicable = [kernel for kernel in kernels_for(group.anchor.op, stage)
                      if self._available(kernel) and kernel.rejects(group, self.target) is None]
        if not applicable:
            return None
        first = applicable[0]
        self.alternatives[key] = [k.name for k in applicable]
        return KernelDecision(first.name, first.layout, first.padded_input, key, signature)

    def _replayed(self, group: FusedGroup, stage: str, key: str, signature: dict[str, Any],
                  line: _Line) -> KernelDecision:
        name = f"group '{group.name}' ({group.anchor.op})"
        kernel = KERNELS[line.kernel]
        if group.anchor.op not in kernel.ops or kernel.stage != stage:
            raise ScheduleError(f"{name}: {line.where} asks for kernel {kernel.name}, which "
                                f"runs {kernel.ops_text} and is chosen at the {kernel.stage} "
                                f"stage; this signature is decided at the {stage} stage")
        reason = None if self._available(kernel) else \
            f"it needs {kernel.min_vector_bits}-bit vectors and the CPU features " \
            f"{', '.join(kernel.features) or '(none)'}; this target has " \
            f"{self.vector_bits or 'no'}-bit vectors and " \
            f"{', '.join(sorted(set(kernel.features) & self.target.features)) or 'none of them'}"
        reason = reason or kernel.rejects(group, self.target)
        if reason is not None:
            raise ScheduleError(f"{name}: {line.where} asks for kernel {kernel.name}, which "
                                f"does not apply: {reason}")
        return KernelDecision(kernel.name, kernel.layout, kernel.padded_input, key, signature,
                              line.schedule)

    def _add_line(self, where: str, line: Any) -> None:
        if not isinstance(line, dict):
            raise ScheduleError(f"{where}: a schedule line is a JSON object")
        missing = [f for f in ("kernel", "target", "cpu", "vector_bits", "signature",
                               "schedule") if f not in line]
        if missing:
            raise ScheduleError(f"{where}: missing {', '.join(missing)} (write the file with "
                                f"--dump-schedule and edit it)")
        kernel = KERNELS.get(line["kernel"])
        if kernel is None:
            raise ScheduleError(f"{where}: no kernel named {line['kernel']!r}; `kiln kernels` "
                                f"lists them: {', '.join(KERNELS)}")
        schedule = None if line["schedule"] is None else \
            from_dict(kernel.schedule, line["schedule"], where)
        key = line_key(line)
        earlier = self.replay.get(key)
        if earlier is not None and (earlier.kernel, earlier.schedule) != (kernel.name, schedule):
            raise ScheduleError(f"{where}: the same signature as {earlier.where} with another "
                                f"kernel or schedule")
        self.replay.setdefault(key, _Line(where, kernel.name, schedule))


def line_key(line: dict[str, Any]) -> str:
    """The key a schedule line (or a tuning record) is matched by."""
    return _key(line["signature"], line["target"], line["cpu"], line["vector_bits"])


def _key(signature: Any, target: Any, cpu: Any, vector_bits: Any) -> str:
    return json.dumps({"signature": signature, "target": target, "cpu": cpu,
                       "vector_bits": vector_bits}, sort_keys=True, separators=(",", ":"))


def select_kernels(graph: Graph, selector: KernelSelector) -> None:
    """Record the kernel and schedule of every group the registry runs (FusedGroup.kernel)."""
    served = registered_ops()
    for group in graph.groups or []:
        if group.anchor.op in served:
            group.kernel = selector.group_decision(group)


def read_schedule_file(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, object) of each line of a schedule file; blank lines are skipped."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ScheduleError(f"cannot read the schedule file {path}: {error.strerror}") from None
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        where = f"line {number} of {path}"
        try:
            lines.append((where, json.loads(raw)))
        except json.JSONDecodeError as error:
            raise ScheduleError(f"{where}: not JSON ({error.msg})") from None
    return lines


def schedule_lines(graph: Graph, selector: KernelSelector) -> list[str]:
    """The JSON line of every group's recorded decision, in kernel order."""
    lines = []
    for group in graph.groups or []:
        decision = group.kernel
        if decision is None:
            continue
        lines.append(json.dumps({
            "group": group.name, "kernel": decision.kernel, "target": selector.target_name,
            "cpu": selector.cpu, "vector_bits": selector.vector_bits,
            "signature": decision.signature, "schedule": as_dict(decision.schedule)},
            sort_keys=False, separators=(",", ":")))
    return lines
