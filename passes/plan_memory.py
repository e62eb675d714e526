"""Place every intermediate value in one activation arena, reusing bytes of dead values.

Which values need bytes and for how long comes from compiler.liveness (group outputs that
are not graph outputs, alive from the producing group to the last reading group). Placement
is greedy best fit: the largest values first; each goes into the smallest gap, among the
values whose lifetimes intersect its own, that holds it (the lowest such gap on a tie), or
above all of them. Offsets are ALIGNMENT-aligned; the arena size is rounded up to it.

The values alive with a new one are found through the steps it lives over (each step lists
the blocks placed across it), not by a scan of every block placed so far: an unrolled graph
has thousands of short-lived values, and a scan per value made planning quadratic in them.
"""

from __future__ import annotations

from ..compiler.ir import Graph, MemoryPlan
from ..compiler.liveness import ALIGNMENT, LiveRange, live_ranges, peak_live_bytes


def plan_memory(graph: Graph) -> Graph:
    """A fixed arena, sized at compile time, so the runtime never allocates activations."""
    ranges = live_ranges(graph)
    sizes = [r.nbytes for r in ranges]
    order = sorted(range(len(ranges)), key=lambda i: (-sizes[i], ranges[i].start, i))
    at_step: list[list[tuple[int, int, int]]] = \
        [[] for _ in range(max((r.end for r in ranges), default=-1) + 1)]
    offsets: dict[int, int] = {}
    top = 0
    for index in order:
        r, size = ranges[index], sizes[index]
        offset = _best_fit(r, size, at_step)
        offsets[id(r.value)] = offset
        if size:
            block = (offset, offset + size, index)
            for step in range(r.start, r.end + 1):
                at_step[step].append(block)
        top = max(top, offset + size)
    graph.plan = MemoryPlan(offsets=offsets, arena_size=align(top),
                            lower_bound=peak_live_bytes(ranges))
    return graph


def align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def _best_fit(r: LiveRange, size: int, at_step: list[list[tuple[int, int, int]]]) -> int:
    """The offset of the smallest gap that holds `size` bytes among the blocks (offset, end,
    range index) placed across any step of `r`'s lifetime."""
    if size == 0:
        return 0
    alive = {block for step in range(r.start, r.end + 1) for block in at_step[step]}
    busy = sorted((start, end) for start, end, _ in alive)
    best: tuple[int, int] | None = None   # (gap size, offset)
    cursor = 0
    for start, end in busy:
        gap = start - cursor
        if gap >= size and (best is None or gap < best[0]):
            best = (gap, cursor)
        cursor = max(cursor, align(end))
    return cursor if best is None else best[1]
