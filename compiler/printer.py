"""A readable text form of the graph IR: what pass tests compare and `--dump-ir-after` shows.

    graph tiny(%x: float32[1,3,8,8]) {
      const %w: float32[4,3,3,3]
      const %b: float32[4] = [0.1, 0.2, 0.3, 0.4]
      %conv: float32[1,4,8,8] = conv2d(%x, %w, %b) {strides=(1, 1), pads=(1, 1, 1, 1), ...}
      %relu: float32[1,4,8,8] = relu(%conv)
      return %relu
    }

Constants are listed once, in order of first use; those with at most TINY elements show
their values. A node whose name differs from its (first) output's gets a `# name` comment.
Once fusion has run, nodes are printed inside their groups; once memory is planned, a plan
section lists each arena value's bytes and lifetime.
"""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

from .ir import FusedGroup, Graph, Node, Value
from .liveness import live_ranges

#: Constants with at most this many elements are printed with their values.
TINY = 8


def print_graph(graph: Graph) -> str:
    """The whole graph as text (see the module docstring for the form)."""
    params = ", ".join(f"%{v.name}: {v.type}" for v in graph.inputs)
    lines = [f"graph {graph.name}({params}) {{"]
    lines += [f"  {format_constant(v)}" for v in graph.values() if v.is_constant]
    if graph.groups is None:
        lines += [f"  {format_node(n)}" for n in graph.nodes]
    else:
        for group in graph.groups:
            lines += format_group(graph, group)
    lines.append(f"  return {', '.join(ref(v) for v in graph.outputs)}")
    lines.append("}")
    if graph.plan is not None:
        lines += format_plan(graph)
    return "\n".join(lines) + "\n"


def ref(value: Value) -> str:
    return f"%{value.name}"


def format_constant(value: Value) -> str:
    text = f"const %{value.name}: {value.type}"
    if value.data is not None and value.data.size <= TINY:
        text += f" = {format_array(value.data)}"
    return text


def format_node(node: Node) -> str:
    outs = ", ".join(f"%{v.name}: {v.type}" for v in node.outputs)
    text = f"{outs} = {node.op}({', '.join(ref(v) for v in node.inputs)})"
    if node.attrs:
        text += " {" + ", ".join(f"{k}={format_attr(v)}" for k, v in node.attrs.items()) + "}"
    if node.outputs and node.name != node.outputs[0].name:
        text += f"  # {node.name}"
    return text


def format_group(graph: Graph, group: FusedGroup) -> list[str]:
    ops = "+".join(n.op for n in group.nodes)
    outs = ", ".join(ref(v) for v in group.outputs(graph))
    lines = [f"  group {group.name} ({ops}) -> {outs} {{"]
    lines += [f"    {format_node(n)}" for n in group.nodes]
    lines.append("  }")
    return lines


def format_plan(graph: Graph) -> list[str]:
    plan = graph.plan
    ranges = live_ranges(graph)
    lines = [f"plan arena={plan.arena_size} lower_bound={plan.lower_bound} {{"]
    for r in ranges:
        offset = plan.offsets.get(id(r.value))
        where = "unplaced" if offset is None else f"[{offset}, {offset + r.nbytes})"
        lines.append(f"  {ref(r.value)} {where} live {r.start}..{r.end}")
    lines.append("}")
    return lines


def format_attr(value: Any) -> str:
    """An attribute value as Python-like text (numpy scalars and arrays, dtypes readable)."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, np.ndarray):
        if value.size <= TINY:
            return format_array(value)
        return f"<{value.dtype}[{','.join(map(str, value.shape))}]>"
    if isinstance(value, np.generic):
        return repr(value.item())
    if isinstance(value, tuple):
        inner = ", ".join(format_attr(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    return repr(value)


def format_array(data: np.ndarray) -> str:
    """Values of a small array on one line, each at the shortest precision its dtype holds."""
    data = np.asarray(data)
    if data.ndim == 0:
        return str(data[()])
    return "[" + ", ".join(format_array(row) for row in data) + "]"
