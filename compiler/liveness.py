"""Which Values need arena storage, and over which steps (fused groups) each one is live.

A step is one fused group, in graph order (each node is its own step before fusion). A Value
lives from the step that produces it to the last step that reads it, both included: a kernel
reads its inputs while it writes its outputs, so they never share bytes.

Values that need no arena: graph inputs and constants (caller's buffers, read-only data),
graph outputs (the caller's output buffers), values used only inside their own group, and
the outputs of groups that write into another value (FusedGroup.into): that value lives
from the first of its writers on, and until the last reader of any of them.

A loop (compiler/ops/loops.py) runs the steps of its region again and again: a value made
before the region and read inside it lives to the region's end (the next iteration reads it
again). Values made and read inside one iteration need nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ir import FusedGroup, Graph, Value
from .ops.loops import regions

#: Every arena offset is a multiple of this many bytes (a cache line; any vector load fits).
ALIGNMENT = 64


@dataclass(frozen=True)
class LiveRange:
    """A Value that needs arena bytes, alive from step `start` to step `end` inclusive."""

    value: Value
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.value.type.nbytes

    def overlaps(self, other: "LiveRange") -> bool:
        return self.start <= other.end and other.start <= self.end


def steps(graph: Graph) -> list[FusedGroup]:
    """The graph's groups, or one single-node step per node before fusion has run."""
    if graph.groups is not None:
        return graph.groups
    return [FusedGroup(node.name, [node]) for node in graph.nodes]


def live_ranges(graph: Graph) -> list[LiveRange]:
    """Every arena Value with its lifetime, in order of production."""
    groups = steps(graph)
    step_of = {id(node): index for index, group in enumerate(groups) for node in group.nodes}
    graph_outputs = {id(v) for v in graph.outputs}
    aliased = {id(g.nodes[-1].output) for g in groups if g.into is not None}
    first_writer: dict[int, int] = {}
    last_reader: dict[int, int] = {}
    for index, group in enumerate(groups):
        if group.into is not None:
            target = id(group.into[0])
            first_writer.setdefault(target, index)
            readers = [step_of[id(u)] for u in group.nodes[-1].output.users]
            last_reader[target] = max([last_reader.get(target, index), *readers])
    loops = regions([g.anchor for g in groups])
    ranges: list[LiveRange] = []
    for index, group in enumerate(groups):
        needed = {id(v): v for v in group.outputs(graph) if id(v) not in aliased}
        for node in group.nodes:
            for value in node.outputs:
                if not value.users and id(value) not in graph_outputs:
                    needed[id(value)] = value   # a dead output still has to be written
        for value in needed.values():
            if id(value) in graph_outputs:
                continue
            end = max((step_of[id(u)] for u in value.users), default=index)
            end = max(end, index, last_reader.get(id(value), index))
            start = min(index, first_writer.get(id(value), index))
            for begin, stop in loops:
                if start < begin <= end:
                    end = max(end, stop)
            ranges.append(LiveRange(value, start, end))
    return ranges


def peak_live_bytes(ranges: list[LiveRange]) -> int:
    """The most bytes alive at any one step: a lower bound on any arena's size."""
    if not ranges:
        return 0
    last = max(r.end for r in ranges)
    delta = [0] * (last + 2)
    for r in ranges:
        delta[r.start] += r.nbytes
        delta[r.end + 1] -= r.nbytes
    peak = live = 0
    for change in delta:
        live += change
        peak = max(peak, live)
    return peak
