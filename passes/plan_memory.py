"""Place every intermediate value in one activation arena, reusing bytes of dead values.

Which values need bytes and for how long comes from compiler.liveness (group outputs that
are not graph outputs, alive from the producing group to the last reading group). Placement
is greedy best fit: the largest values first; each goes into the smallest gap, among the
values whose lifetimes intersect its own, that holds it (the lowest such gap on a tie), or
above all of them. Offsets are ALIGNMENT-aligned; the arena size is rounded up to it.

The bytes busy over a lifetime come from an index of the blocks placed so far (_BusyIndex),
as a few merged address ranges, not from a scan of every block: an unrolled graph has
thousands of values, and hundreds of them alive at once (a sequence split into frames), so
a scan per value made planning quadratic, even cubic, in the graph's size.
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import chain

from ..compiler.ir import Graph, MemoryPlan
from ..compiler.liveness import ALIGNMENT, live_ranges, peak_live_bytes


def plan_memory(graph: Graph) -> Graph:
    """A fixed arena, sized at compile time, so the runtime never allocates activations."""
    ranges = live_ranges(graph)
    sizes = [r.nbytes for r in ranges]
    order = sorted(range(len(ranges)), key=lambda i: (-sizes[i], ranges[i].start, i))
    placed = _BusyIndex(max((r.end for r in ranges), default=-1) + 1)
    offsets: dict[int, int] = {}
    top = 0
    for index in order:
        r, size = ranges[index], sizes[index]
        offset = 0
        if size:
            offset = _best_fit(size, placed.busy(r.start, r.end))
            placed.add(r.start, r.end, offset, align(offset + size))
        offsets[id(r.value)] = offset
        top = max(top, offset + size)
    graph.plan = MemoryPlan(offsets=offsets, arena_size=align(top),
                            lower_bound=peak_live_bytes(ranges))
    return graph


def align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def _best_fit(size: int, busy: list[tuple[int, int]]) -> int:
    """The offset of the smallest gap between the `busy` address ranges [lo, hi) (sorted;
    they may overlap) that holds `size` bytes (the lowest on a tie), or the first offset
    above all of them."""
    best: tuple[int, int] | None = None   # (gap size, offset)
    cursor = 0
    for lo, hi in busy:
        gap = lo - cursor
        if gap >= size and (best is None or gap < best[0]):
            best = (gap, cursor)
        cursor = max(cursor, hi)
    return cursor if best is None else best[1]


class _BusyIndex:
    """Placed blocks (a lifetime [start, end] in steps, an address range [lo, hi)), so that
    the address ranges busy at any step of a lifetime come back as a few sorted lists.

    A block is busy during [a, b] when it is alive at step a, or starts in (a, b]. Two
    segment trees over the steps answer each half in O(log steps) lists: `cover` keeps a
    block on the nodes that tile its lifetime (those on the path from step a to the root are
    the ones alive at a); `starts` keeps it on every node above its start (the nodes that tile
    (a, b] hold the blocks starting there). Each node's list is the union of its blocks'
    address ranges, merged: touching or overlapping ranges leave no gap a value could use, so
    merging changes no placement, and a stack of frames placed side by side is one range.
    """

    def __init__(self, steps: int):
        self.leaves = 1 << max(steps - 1, 0).bit_length()
        self.cover: list[list[tuple[int, int]]] = [[] for _ in range(2 * self.leaves)]
        self.starts: list[list[tuple[int, int]]] = [[] for _ in range(2 * self.leaves)]

    def add(self, start: int, end: int, lo: int, hi: int) -> None:
        for node in self._tiles(start, end + 1):
            _merge_into(self.cover[node], lo, hi)
        node = start + self.leaves
        while node:
            _merge_into(self.starts[node], lo, hi)
            node >>= 1

    def busy(self, start: int, end: int) -> list[tuple[int, int]]:
        """The address ranges of the blocks alive at any step of [start, end], sorted."""
        lists = [self.starts[node] for node in self._tiles(start + 1, end + 1)]
        node = start + self.leaves
        while node:
            lists.append(self.cover[node])
            node >>= 1
        return sorted(chain.from_iterable(lists))

    def _tiles(self, first: int, stop: int) -> list[int]:
        """The tree nodes whose step ranges tile [first, stop)."""
        nodes = []
        lo, hi = first + self.leaves, stop + self.leaves
        while lo < hi:
            if lo & 1:
                nodes.append(lo)
                lo += 1
            if hi & 1:
                hi -= 1
                nodes.append(hi)
            lo >>= 1
            hi >>= 1
        return nodes


def _merge_into(merged: list[tuple[int, int]], lo: int, hi: int) -> None:
    """Add [lo, hi) to a sorted list of disjoint, non-touching ranges, keeping it so."""
    first = bisect_left(merged, (lo,))
    if first and merged[first - 1][1] >= lo:
        first -= 1
        lo = merged[first][0]
    last = first
    while last < len(merged) and merged[last][0] <= hi:
        hi = max(hi, merged[last][1])
        last += 1
    merged[first:last] = [(lo, hi)]
