"""The cache-blocked schedule of every GEMM whose B is packed at compile time.

out[M, N] = A[M, K] @ B[K, N] (+ a fused epilogue), where B is packed as panels of nr
columns ([N/nr][K][nr], gemm.pack_columns) and A's rows come in `runs` of `run_len` rows,
equally spaced within a run (a row of output pixels of a conv, or all rows of a matrix). K
is `segments` runs of `seg_depth` consecutive elements of A, `a_seg` apart (a conv window
row by row; one segment for a matrix). A tile is mr rows of one run by one panel. A task is
(chunk of tiles, group of panels); per task:

    for kb in K blocks:                    (whole segments, or a slice of one, ~KC deep)
        for panel in the task's group:     (its KC x nr block of B stays in L2)
            for tile in the task's tiles:  (A streams from L2)
                out[tile, panel] (+)= A[tile, kb] @ B[panel, kb]
                last kb: + epilogue (bias, activation, residual) in registers

partial sums accumulating in the output. Tasks split the tiles or the panels, whichever
moves fewer bytes (_split): few rows and many columns split the panels; and a task takes at
most `a_block_bytes` of A, so its rows stay in L2. Where B is too big
for the caches, the first tile of each block also prefetches the block of B needed next.
Block sizes, the register tile and the task count are the GemmSchedule's fields
(codegen/schedules.py); the defaults live with the kernel registry (codegen/kernels/).
The last, narrower panel (N % nr) runs through a local tile over all of K, then to the
output with a scalar epilogue; so does an epilogue with no vector form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from ...compiler.dtypes import DType
from ...compiler.ir import Value
from .. import kernel_ir as K
from ..schedules import GemmSchedule
from .common import LowerContext, Step, apply_steps
from .gemm import Tile
from .gemm_epilogue import vector_steps
from .gemm_micro import invoke, microkernel_function
from .tile_epilogue import tile_epilogue


@dataclass(frozen=True)
class GemmSpec:
    """One GEMM as the schedule reads it."""

    a: K.Buffer
    b: K.Buffer                              # packed panels
    out: K.Buffer
    ldo: int                                 # output elements between rows
    n: int                                   # columns (output channels)
    runs: int
    run_len: int
    run_base: Callable[[K.Expr], K.Expr]     # A offset of run r's first row
    a_rs: int                                # A elements between rows of a run
    segments: int
    seg_depth: int
    a_seg: int                               # A elements between segments
    a_bytes: int                             # bytes of A (the traffic model of _split)
    schedule: GemmSchedule
    lanes: int
    steps: list[Step]                        # the epilogue, bias first
    shape_of: Callable[[Value], Sequence[int] | None]   # an operand on [M, N], or None
    index_of: Callable[[K.Expr, K.Expr], list[K.Expr]]  # output row, column: graph index

    @property
    def tile(self) -> Tile:
        return Tile(self.lanes, self.schedule.mr, self.schedule.nv)

    @property
    def depth(self) -> int:
        return self.segments * self.seg_depth

    @property
    def rows(self) -> int:
        return self.runs * self.run_len


def choose_tile(run_len: int, runs: int, n: int, depth: int, vector_bits: int) -> Tile:
    """The register tile whose estimated time over the whole GEMM is least. Per k step a
    tile issues rows*nv FMAs (two per cycle) and nv + rows loads (two per cycle), and needs
    8 independent accumulators to hide the FMA latency; ragged rows and a partial last
    panel count in full; each tile also costs a call and its accumulators' loads and
    stores."""
    lanes = 16 if vector_bits >= 512 else 8
    budget = 28 if lanes == 16 else 12
    best: tuple[float, Tile] | None = None
    for nv in range(1, 5):
        if nv * lanes > -(-n // lanes) * lanes:
            break
        panels = -(-n // (nv * lanes))
        for mr in range(1, min(budget // nv, 16, run_len) + 1):
            full, rem = divmod(run_len, mr)
            cost = 0.0
            for rows, count in ((mr, full), (rem, 1 if rem else 0)):
                step = max(rows * nv / 2, (rows + nv) / 2, 4.0)
                cost += count * (depth * step + 30 + 2 * rows * nv)
            cost *= panels * runs
            if best is None or cost < best[0] - 1e-9:
                best = (cost, Tile(lanes, mr, nv))
    assert best is not None
    return best[1]


def _k_blocks(spec: GemmSpec) -> tuple[int, int, int, bool]:
    """(blocks, segments per block, depth of a block's slice, sliced): whole segments
    grouped up to KC deep (a panel's block of B in block_bytes), or each segment cut
    into slices of about KC."""
    kc = max(16, spec.schedule.block_bytes // (4 * spec.tile.nr))
    if spec.seg_depth <= kc:
        per = max(1, min(spec.segments, kc // spec.seg_depth))
        return -(-spec.segments // per), per, spec.seg_depth, False
    slices = -(-spec.seg_depth // kc)
    size = -(-spec.seg_depth // slices)
    return spec.segments * slices, 1, size, True


def lower_gemm(ctx: LowerContext, spec: GemmSpec) -> list[K.Stmt]:
    """The kernel body (one parallel loop) of `spec`."""
    tile = spec.tile
    lanes, mr, nv, nr = tile.lanes, tile.mr, tile.nv, tile.nr
    names = ctx.names
    merged_out = [spec.rows, spec.n]
    steps = spec.steps
    mergeable = all(spec.shape_of(v) is not None for _, ins, _, _ in steps for v in ins
                    if v is not None)
    ep = tile_epilogue(steps, merged_out, spec.shape_of, lanes) \
        if steps and mergeable else None

    tpr = -(-spec.run_len // mr)
    ragged = spec.run_len % mr
    tiles = spec.runs * tpr
    panels, full_panels = -(-spec.n // nr), spec.n // nr
    kblocks, per_block, slice_depth, sliced = _k_blocks(spec)
    slices = -(-spec.seg_depth // slice_depth) if sliced else 1
    b_bytes = 4 * spec.depth * spec.n

    chunks, pgroups = _split(tiles, max(full_panels, 1), b_bytes, spec.a_bytes,
                             spec.schedule.min_tasks)
    chunks = min(tiles, max(chunks, -(-spec.a_bytes // spec.schedule.a_block_bytes)))
    per_group = -(-max(full_panels, 1) // pgroups)
    pgroups = -(-max(full_panels, 1) // per_group)
    per_chunk = -(-tiles // chunks)
    chunks = -(-tiles // per_chunk)
    tasks = chunks * pgroups

    t = names.var("task")
    t0, t1 = names.var("t0"), names.var("t1")
    p0, p1 = names.var("p0"), names.var("p1")
    body: list[K.Stmt] = [
        K.Let(t0, (t // pgroups) * per_chunk),
        K.Let(t1, K.minimum(tiles, (t // pgroups) * per_chunk + per_chunk)),
        K.Let(p0, (t % pgroups) * per_group),
        K.Let(p1, K.minimum(full_panels, (t % pgroups) * per_group + per_group)),
    ]

    def tile_at(ti: K.Expr) -> tuple[K.Expr, K.Expr, K.Expr]:
        """(A offset, output row, tile-in-run index) of tile ti."""
        r, tt = ti // tpr, ti % tpr
        return spec.run_base(r) + tt * (mr * spec.a_rs), r * spec.run_len + tt * mr, tt

    def block(kb: K.Expr) -> tuple[K.Expr, K.Expr, K.Expr, K.Expr]:
        """(A offset, packed-B row, segments, depth) of K block kb."""
        if sliced:
            seg, part = kb // slices, kb % slices
            k0 = part * slice_depth
            return (seg * spec.a_seg + k0, seg * spec.seg_depth + k0, K.const(1),
                    K.minimum(slice_depth, spec.seg_depth - k0))
        seg0 = kb * per_block
        return (seg0 * spec.a_seg, seg0 * spec.seg_depth,
                K.minimum(per_block, spec.segments - seg0), K.const(spec.seg_depth))

    streaming = b_bytes > spec.schedule.streamed_bytes

    def micro(rows: int, kb: K.Expr, a0: K.Expr, row0: K.Expr, pj: K.Expr, ti: K.Expr
              ) -> list[K.Stmt]:
        a_off, b_row, nseg, depth = block(kb)
        last = K.binary("==", kb, kblocks - 1)
        finish = None
        if ep is not None:
            finish = (last, ep.arguments(row0, pj * nr, spec.n, ctx.buf))

        def call(prefetch: bool) -> K.Invoke:
            fn = microkernel_function(lanes, rows, nv, spec.a_rs, 1, nr, lanes,
                                      segmented=True, epilogue=ep, prefetch=prefetch)
            ahead = None
            if prefetch:   # the block this task needs next: the next panel, or next K block
                nxt = K.binary("<", pj + 1, p1)
                n_pj = K.select(nxt, pj + 1, p0)
                _, n_row, _, _ = block(K.select(nxt, kb, kb + 1))
                ahead = (spec.b, n_pj * (spec.depth * nr) + n_row * nr)
            return invoke(fn, depth, (spec.a, a0 + a_off),
                          (spec.b, pj * (spec.depth * nr) + b_row * nr),
                          (spec.out, row0 * spec.ldo + pj * nr), spec.ldo,
                          K.binary(">", kb, 0), segments=(nseg, spec.a_seg), finish=finish,
                          prefetch=ahead)

        calls: list[K.Stmt] = [K.If(K.binary("==", ti, t0), [call(True)], [call(False)])] \
            if streaming else [call(False)]
        if ep is not None or not steps:
            return calls
        return calls + [K.If(last, _finish_in_memory(ctx, spec, row0, rows, pj * nr,
                                                     merged_out, mergeable))]

    kb, ti, pj = names.var("kb"), names.var("ti"), names.var("pj")
    a0v, row0v, ttv = names.var("a0"), names.var("row0"), names.var("tt")
    a0, row0, tt = tile_at(ti)
    inner = micro(mr, kb, a0v, row0v, pj, ti)
    if ragged:
        inner = [K.If(K.binary("==", ttv, tpr - 1), micro(ragged, kb, a0v, row0v, pj, ti),
                      inner)]
    body.append(K.For(kb, K.const(0), K.const(kblocks), [
        K.For(pj, p0, p1, [
            K.For(ti, t0, t1, [K.Let(a0v, a0), K.Let(row0v, row0), K.Let(ttv, tt)] + inner)])]))
    if full_panels < panels:
        edge = _edge_panel(ctx, spec, t0, t1, tile_at, block, kblocks, tpr, ragged)
        body.append(K.If(K.binary("==", t % pgroups, pgroups - 1), edge))
    return [K.For(t, K.const(0), K.const(tasks), body, "parallel")]


def _split(tiles: int, panels: int, b_bytes: int, a_bytes: int, min_tasks: int
           ) -> tuple[int, int]:
    """(tile chunks, panel groups) for the tasks: at least min_tasks where the shape allows,
    and of those the split that moves the fewest bytes. Each tile chunk streams all of B of
    its panel groups (b_bytes in all), each panel group all of A of its tiles (a_bytes)."""
    want = min(min_tasks, tiles * panels)
    best: tuple[float, int, int] | None = None
    for pg in range(1, panels + 1):
        tc = min(tiles, -(-want // pg))
        if tc * pg < want:
            continue
        traffic = tc * b_bytes * min(1.0, pg * -(-panels // pg) / panels) + pg * a_bytes
        if best is None or traffic < best[0]:
            best = (traffic, tc, pg)
    assert best is not None
    return best[1], best[2]


def _finish_in_memory(ctx: LowerContext, spec: GemmSpec, row0: K.Expr, rows: int,
                      col0: K.Expr, merged_out: list[int], vectors: bool) -> list[K.Stmt]:
    """The epilogue over a finished rows x nr tile in the output: on vectors, or on
    scalars where an op has no vector form (or an operand does not fold to [M, N])."""
    lanes = spec.tile.lanes
    i = ctx.names.var("i")
    stmts: list[K.Stmt] = []
    for v in range(spec.tile.nv):
        index = (row0 + i) * spec.ldo + col0 + v * lanes
        res = vector_steps(ctx, spec.steps, K.VecLoad(spec.out, index, lanes), lanes,
                           merged_out, [row0 + i, col0 + v * lanes], spec.shape_of) \
            if vectors else None
        if res is None:
            return _scalar_finish(ctx, spec, spec.out, 0, row0, rows, col0, spec.tile.nr)
        lets, value = res
        stmts += lets + [K.VecStore(spec.out, index, value, lanes)]
    return [K.For(i, K.const(0), K.const(rows), stmts)]


def _scalar_finish(ctx: LowerContext, spec: GemmSpec, src: K.Buffer, src_stride: int,
                   row0: K.Expr, rows: int, col0: K.Expr, ncols: int) -> list[K.Stmt]:
    """out[row0 + i, col0 + j] = steps(src[...]) for a rows x ncols tile; src is the output
    itself (src_stride 0) or a local tile with row stride src_stride. Operands are indexed
    as the graph shapes them (spec.index_of)."""
    i, j = ctx.names.var("i"), ctx.names.var("jc")
    index = (row0 + i) * spec.ldo + col0 + j
    source = K.Load(src, i * src_stride + j) if src_stride else K.Load(spec.out, index)
    where = spec.index_of(row0 + i, col0 + j)
    lets, value = apply_steps(ctx, spec.steps, source, [0] * len(where), where)
    return [K.For(i, K.const(0), K.const(rows), [
        K.For(j, K.const(0), K.const(ncols), lets + [K.Store(spec.out, index, value)],
              "vector")])]


def _edge_panel(ctx: LowerContext, spec: GemmSpec, t0, t1, tile_at, block, kblocks: int,
                tpr: int, ragged: int) -> list[K.Stmt]:
    """The last panel (N % nr columns): each tile over all of K in a local tile, then to
    the output with the epilogue on scalars."""
    names = ctx.names
    tile = spec.tile
    lanes, mr, nv, nr = tile.lanes, tile.mr, tile.nv, tile.nr
    pj = spec.n // nr
    ncols = spec.n - pj * nr
    tbuf = K.Buffer(names.var("edge").name, DType.float32, mr * nr, "local")
    ctx.buffers[id(tbuf)] = tbuf

    def run(rows: int, a0: K.Expr, row0: K.Expr) -> list[K.Stmt]:
        kb = names.var("kb")
        a_off, b_row, nseg, depth = block(kb)
        fn = microkernel_function(lanes, rows, nv, spec.a_rs, 1, nr, lanes, segmented=True)
        call = invoke(fn, depth, (spec.a, a0 + a_off),
                      (spec.b, pj * (spec.depth * nr) + b_row * nr), (tbuf, K.const(0)), nr,
                      K.binary(">", kb, 0), segments=(nseg, spec.a_seg))
        copy = _scalar_finish(ctx, spec, tbuf, nr, row0, rows, K.const(pj * nr), ncols)
        return [K.For(kb, K.const(0), K.const(kblocks), [call])] + copy

    ti = names.var("ti")
    a0v, row0v, ttv = names.var("a0"), names.var("row0"), names.var("tt")
    a0, row0, tt = tile_at(ti)
    inner = run(mr, a0v, row0v)
    if ragged:
        inner = [K.If(K.binary("==", ttv, tpr - 1), run(ragged, a0v, row0v), inner)]
    return [K.For(ti, t0, t1, [K.Let(a0v, a0), K.Let(row0v, row0), K.Let(ttv, tt)] + inner)]
