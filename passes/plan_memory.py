"""Place every intermediate value in one activation arena, reusing bytes of dead values.

Which values need bytes and for how long comes from compiler.liveness (group outputs that
are not graph outputs, alive from the producing group to the last reading group). Placement
is greedy best fit: the largest values first; each goes into the smallest gap, among the
values whose lifetimes intersect its own, that holds it (the lowest such gap on a tie), or
above all of them. Offsets are ALIGNMENT-aligned; the arena size is rounded up to it.

The blocks alive with a new value are those alive at its first step and those that start
later within its lifetime: each step lists the blocks placed across it and the blocks that
start there. A scan of every block placed so far, per value, made planning quadratic in an
unrolled graph's thousands of short-lived values.
"""

from __future__ import annotations

from ..compiler.ir import Graph, MemoryPlan
from ..compiler.liveness import ALIGNMENT, live_ranges, peak_live_bytes


def plan_memory(graph: Graph) -> Graph:
    """A fixed arena, sized at compile time, so the runtime never allocates activations."""
    ranges = live_ranges(graph)
    sizes = [r.nbytes for r in ranges]
    order = sorted(range(len(ranges)), key=lambda i: (-sizes[i], ranges[i].start, i))
    count = max((r.end for r in ranges), default=-1) + 1
    alive: list[list[tuple[int, int]]] = [[] for _ in range(count)]     # (offset, end)
    starting: list[list[tuple[int, int]]] = [[] for _ in range(count)]
    offsets: dict[int, int] = {}
    top = 0
    for index in order:
        r, size = ranges[index], sizes[index]
        offset = 0
        if size:
            busy = alive[r.start] + [block for step in range(r.start + 1, r.end + 1)
                                     for block in starting[step]]
            offset = _best_fit(size, busy)
            block = (offset, offset + size)
            starting[r.start].append(block)
            for step in range(r.start, r.end + 1):
                alive[step].append(block)
        offsets[id(r.value)] = offset
        top = max(top, offset + size)
    graph.plan = MemoryPlan(offsets=offsets, arena_size=align(top),
                            lower_bound=peak_live_bytes(ranges))
    return graph


def align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def _best_fit(size: int, busy: list[tuple[int, int]]) -> int:
    """The offset of the smallest gap between the `busy` blocks (offset, end) that holds
    `size` bytes (the lowest on a tie), or the first offset above all of them."""
    best: tuple[int, int] | None = None   # (gap size, offset)
    cursor = 0
    for start, end in sorted(busy):
        gap = start - cursor
        if gap >= size and (best is None or gap < best[0]):
            best = (gap, cursor)
        cursor = max(cursor, align(end))
    return cursor if best is None else best[1]
