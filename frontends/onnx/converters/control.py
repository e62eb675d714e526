"""Control flow: ONNX If.

A branch is a subgraph that may read any name of the enclosing scopes. When the condition is
known at compile time (a constant, a value computed from shapes, or an input the user pinned
with `consts={"sr": 16000}` / `--const sr=16000`), only the branch taken is converted, inline,
as if its nodes stood in place of the If.

When the condition is only known at run time, both branches are converted, each between
markers (compiler/ops/loops.py: if_begin, if_else, if_end), and the run function runs only the
kernels of the branch taken (a C `if`). Each output has one buffer both branches write
(loop_buffer, written by a loop_next in each branch), read after the If. Both branches must
produce the same types at the pinned shapes (otherwise pinning the condition is the fix).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ....compiler.dtypes import DType
from ....compiler.errors import UnsupportedModelError
from ....compiler.ir import Value
from ..registry import converter, lookup, normalize_domain
from .scan import run_body



def _condition_inputs(ctx, cond) -> list[str]:
    """The graph inputs `cond` is computed from, sorted by name."""
    inputs = {id(v): v.name for v in ctx.graph.inputs}
    found, seen, stack = [], set(), [cond]
    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if id(value) in inputs:
            found.append(inputs[id(value)])
        elif value.producer is not None:
            stack.extend(value.producer.inputs)
    return sorted(found)


def _pin_hint(names: list[str]) -> str:
    """How to make a condition known at compile time: pin the graph inputs `names`."""
    names = names or ["INPUT"]
    example = " ".join(f"--const {n}=VALUE" for n in names)
    return (f"pin what the condition depends on at compile time: {example} "
            f"(consts={{{', '.join(repr(n) + ': ...' for n in names)}}} in Python)")


def convert_branch(ctx, branch: Any, which: str) -> list:
    """Convert subgraph `branch` inline in the current scope; its output Values in order."""
    missing = [f"{n.op_type} (node '{n.name or n.op_type}')" for n in branch.node
               if lookup(normalize_domain(n.domain), n.op_type,
                         ctx.opsets.get(normalize_domain(n.domain), 0)) is None]
    if missing:
        ctx.fail(f"the {which} branch uses ops Kiln has no converter for: "
                 f"{', '.join(missing)}", "replace them with supported ops or file an issue")
    return run_body(ctx, branch, [], f"{which} branch")


def _run_time_branch(ctx, branch: Any, which: str, pins: list[str]) -> list:
    """convert_branch, for a condition known only at run time (computed from the graph
    inputs `pins`): say how to avoid it."""
    try:
        return convert_branch(ctx, branch, which)
    except UnsupportedModelError as exc:
        reasons = "; ".join(f"{p.node} ({p.op_type}): {p.reason}" for p in exc.problems)
        ctx.fail(f"the condition is only known at run time, so both branches are compiled, "
                 f"and the {which} branch cannot be at these shapes: {reasons}",
                 _pin_hint(pins), pins)


@converter("If", since=1)
def if_(ctx, cond, then_branch=None, else_branch=None):
    if then_branch is None or else_branch is None:
        ctx.fail("If needs both then_branch and else_branch")
    if cond.shape not in ((), (1,)) and int(np.prod(cond.shape)) != 1:
        ctx.fail(f"If condition must hold one element, not shape {list(cond.shape)}")
    if cond.is_constant:
        taken = bool(np.asarray(cond.data).reshape(-1)[0])
        outputs = convert_branch(ctx, then_branch if taken else else_branch,
                                 "then" if taken else "else")
        return outputs[0] if len(outputs) == 1 else outputs
    pins = _condition_inputs(ctx, cond)
    flag = cond if cond.dtype is DType.bool else ctx.emit("cast", [cond], to=DType.bool)
    name = ctx.graph.unique_node_name(f"{ctx.name}_if")
    begin = ctx.emit("if_begin", [flag], loop=name)
    then_out = _run_time_branch(ctx, then_branch, "then", pins)
    then_written = [None] * len(then_out)
    slots: list[Value] = []
    for index, value in enumerate(then_out):
        slots.append(_slot(ctx, value, begin))
        then_written[index] = _write(ctx, slots[-1], value)
    middle = ctx.emit("if_else", [begin] + then_written, loop=name)
    else_out = _run_time_branch(ctx, else_branch, "else", pins)
    if len(then_out) != len(else_out):
        ctx.fail(f"the branches produce {len(then_out)} and {len(else_out)} outputs")
    for index, (a, b) in enumerate(zip(then_out, else_out)):
        if a.type != b.type:
            ctx.fail(f"the condition is only known at run time, and output {index} differs "
                     f"between branches ({a.type} vs {b.type}) at these shapes",
                     _pin_hint(pins), pins)
    else_written = [_write(ctx, slot, b) for slot, b in zip(slots, else_out)]
    done = ctx.emit("if_end", [middle] + else_written, loop=name)
    results = [ctx.emit("loop_result", [w, done], bounded=False) for w in then_written]
    return results[0] if len(results) == 1 else results


def _write(ctx, slot: Value, value: Value) -> Value:
    """`value` written into an output's buffer (an empty one holds nothing to write)."""
    return slot if slot.is_constant else ctx.emit("loop_next", [slot, value])


def _slot(ctx, like: Value, begin: Value) -> Value:
    """A buffer of `like`'s type, made before the If (whose if_begin makes `begin`)."""
    slot = ctx.emit("loop_buffer", [], dtype=like.dtype, shape=like.shape)
    if slot.producer is not None:
        ctx.graph.nodes.remove(slot.producer)
        ctx.graph.nodes.insert(ctx.graph.nodes.index(begin.producer), slot.producer)
    return slot
