"""Place every intermediate value in one activation arena, reusing bytes of dead values.

Which values need bytes and for how long comes from compiler.liveness (group outputs that
are not graph outputs, alive from the producing group to the last reading group). Placement
is greedy best fit: the largest values first; each goes into the smallest gap, among the
values whose lifetimes intersect its own, that holds it (the lowest such gap on a tie), or
above all of them. Offsets are ALIGNMENT-aligned; the arena size is rounded up to it.
"""

from __future__ import annotations

from ..compiler.ir import Graph, MemoryPlan
from ..compiler.liveness import ALIGNMENT, LiveRange, live_ranges, peak_live_bytes


def plan_memory(graph: Graph) -> Graph:
    """A fixed arena, sized at compile time, so the runtime never allocates activations."""
    ranges = live_ranges(graph)
    order = sorted(range(len(ranges)), key=lambda i: (-ranges[i].nbytes, ranges[i].start, i))
    placed: list[tuple[int, LiveRange]] = []
    offsets: dict[int, int] = {}
    for index in order:
        r = ranges[index]
        offset = _best_fit(r, placed)
        offsets[id(r.value)] = offset
        placed.append((offset, r))
    top = max((offset + r.nbytes for offset, r in placed), default=0)
    graph.plan = MemoryPlan(offsets=offsets, arena_size=align(top),
                            lower_bound=peak_live_bytes(ranges))
    return graph


def align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def _best_fit(r: LiveRange, placed: list[tuple[int, LiveRange]]) -> int:
    """The offset of the smallest gap among blocks alive with `r` that holds it."""
    if r.nbytes == 0:
        return 0
    busy = sorted((offset, offset + other.nbytes) for offset, other in placed
                  if other.nbytes and other.overlaps(r))
    best: tuple[int, int] | None = None   # (gap size, offset)
    cursor = 0
    for start, end in busy:
        gap = start - cursor
        if gap >= r.nbytes and (best is None or gap < best[0]):
            best = (gap, cursor)
        cursor = max(cursor, align(end))
    return cursor if best is None else best[1]
