"""What the GEMM-based entries (conv.py, matmul.py) share: the default blocking of the
cache-blocked GEMM and whether a register tile fits a group."""

from __future__ import annotations

from ..schedules import GemmSchedule, KernelTarget


def gemm_schedule(mr: int, nv: int, runs: int, run_len: int, n: int, target: KernelTarget
                  ) -> GemmSchedule:
    """The default blocking of the cache-blocked GEMM for the cheapest register tile: a K
    block of a panel in a quarter of L2 (measured on Zen 5: blocks this big beat L1-sized
    ones by 5-10%), a task's A in L2, B prefetched once it outgrows L2, four tasks per
    thread; and narrower tiles where the tile's rows and whole panels leave threads idle."""
    while nv > 1 and runs * -(-run_len // mr) * max(n // (nv * target.lanes), 1) < target.threads:
        nv -= 1
    return GemmSchedule(mr=mr, nv=nv, block_bytes=target.l2_bytes // 4,
                        a_block_bytes=target.l2_bytes, streamed_bytes=target.l2_bytes,
                        min_tasks=4 * target.threads)


def tile_misfit(mr: int, nv: int, columns: int, target: KernelTarget) -> str | None:
    """Why a register tile of mr rows by nv vectors does not fit `columns` output columns
    or the ISA's registers (None: it fits)."""
    if mr * nv > target.register_budget:
        return f"a {mr}x{nv}-vector tile needs {mr * nv} accumulators; the ISA has room " \
               f"for {target.register_budget}"
    width = nv * target.lanes
    if width > -(-columns // target.lanes) * target.lanes:
        return f"a tile {width} columns wide is wider than the tensor's {columns} columns"
    return None
