"""Dense conv2d in NHWC as an implicit GEMM over weights packed at compile time.

Output pixels are the GEMM's rows, output channels its columns, and K runs over the window
(kh, kw, c) of the input, which passes/pad_convs.py has already zero-padded. For a fixed kh
the (kw, c) part of a window is KW*C consecutive floats of one input row, so the microkernel
reads a tile of mr consecutive output pixels of one row as

    A[i, k] = x[base + i*sw*C + s*dh*W*C + kk]        k = (s, kk): segment s = kh, kk < KW*C

(a segmented microkernel, gemm_micro). The weights [OC, C, KH, KW] are packed as panels of
nr output channels over K in (kh, kw, c) order ([OC/nr][K][nr], gemm.pack_columns). A 1x1
stride-1 conv is a plain GEMM whose rows are all the pixels. A task is (chunk of tiles,
group of panels); per task:

    for kb in K blocks:                    (whole segments, or a slice of one: KC deep)
        for panel in the task's group:     (its KC x nr block of weights stays in L1)
            for tile in the task's tiles:  (A streams from L2)
                out[tile, panel] (+)= A[tile, kb] @ B[panel, kb]
                last kb: + bias, activation, residual, in registers (tile_epilogue)

partial sums accumulating in the output. Tasks split the tiles or the panels, whichever
moves fewer bytes (_split): a 7x7 image with 512 channels has few pixels and many weights. A last, narrower panel (OC % nr) runs through a
local tile over all of K, then to the output with a scalar epilogue. Dilation along W is not
handled here (channels_last keeps such convs NCHW).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup, Node
from .. import kernel_ir as K
from .common import LowerContext, apply_steps, group_output, steps_of
from .gemm import Tile, merged_shape, pack_columns
from .gemm_epilogue import vector_steps
from .conv_winograd import lower_conv_winograd, winograd_plan
from .gemm_micro import invoke, microkernel_function
from .tile_epilogue import tile_epilogue

#: bytes of one K block of one panel: half of a 48 KiB L1 (KC = 192 deep at nr = 32)
BLOCK_BYTES = 24 * 1024
#: weights of more bytes than this stream from memory: kernels prefetch them a block ahead
STREAMED_WEIGHTS = 1 << 20
#: make at least this many tasks where the shape allows (2 threads, 4 chunks each)
MIN_TASKS = 8


@dataclass(frozen=True)
class Geometry:
    """An NHWC dense conv (padding already explicit) as a segmented GEMM."""

    n: int
    h: int
    w: int
    c: int
    oh: int
    ow: int
    oc: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int

    @property
    def flat(self) -> bool:
        """1x1 at stride 1: every output pixel is a row of one long GEMM."""
        return self.kh == self.kw == 1 and self.sh == self.sw == 1

    @property
    def rows(self) -> int:
        """Runs of output pixels that are equally spaced in the input."""
        return 1 if self.flat else self.n * self.oh

    @property
    def row_len(self) -> int:
        return self.n * self.oh * self.ow if self.flat else self.ow

    @property
    def seg_depth(self) -> int:
        return self.kw * self.c

    @property
    def depth(self) -> int:
        return self.kh * self.seg_depth


def geometry(node: Node) -> Geometry:
    x, w = node.inputs[0], node.inputs[1]
    n, h, wd, c = x.shape
    _, oh, ow, oc = node.output.shape
    _, _, kh, kw = w.shape
    assert node.attrs["pads"] == (0, 0, 0, 0) and node.attrs["dilations"][1] == 1
    return Geometry(n, h, wd, c, oh, ow, oc, kh, kw, *node.attrs["strides"],
                    node.attrs["dilations"][0])


def nhwc_tile(node: Node, vector_bits: int) -> Tile:
    """The register tile for this conv: the (rows, vectors) whose estimated time over the
    whole output is least. Per k step a tile issues rows*nv FMAs (two per cycle) and
    nv + rows loads (two per cycle), and needs 8 independent accumulators to hide the FMA
    latency; ragged rows and a partial last panel count in full; each tile also costs a
    call and the loads and stores of its accumulators."""
    lanes = 16 if vector_bits >= 512 else 8
    budget = 28 if lanes == 16 else 12
    g = geometry(node)
    best: tuple[float, Tile] | None = None
    for nv in range(1, 5):
        if nv * lanes > -(-g.oc // lanes) * lanes:
            break
        panels = -(-g.oc // (nv * lanes))
        for mr in range(1, min(budget // nv, 16, g.row_len) + 1):
            full, rem = divmod(g.row_len, mr)
            cost = 0.0
            for rows, count in ((mr, full), (rem, 1 if rem else 0)):
                step = max(rows * nv / 2, (rows + nv) / 2, 4.0)
                cost += count * (g.depth * step + 30 + 2 * rows * nv)
            cost *= panels * g.rows
            if best is None or cost < best[0] - 1e-9:
                best = (cost, Tile(lanes, mr, nv))
    assert best is not None
    return best[1]


def pack_nhwc_weight(node: Node, tile: Tile) -> np.ndarray:
    """W [OC, C, KH, KW] as column panels over K in (kh, kw, c) order."""
    w = node.inputs[1].data.astype(np.float32)
    oc = w.shape[0]
    matrix = np.ascontiguousarray(w.transpose(2, 3, 1, 0)).reshape(-1, oc)
    return pack_columns(matrix, tile.nr)


def _k_blocks(g: Geometry, nr: int) -> tuple[int, int, int, bool]:
    """(blocks, segments per block, depth of a block's slice, sliced): whole segments
    grouped up to KC deep (a panel's block of weights in BLOCK_BYTES), or each segment cut
    into slices of about KC."""
    kc = max(16, BLOCK_BYTES // (4 * nr))
    if g.seg_depth <= kc:
        per = max(1, min(g.kh, kc // g.seg_depth))
        return -(-g.kh // per), per, g.seg_depth, False
    slices = -(-g.seg_depth // kc)
    size = -(-g.seg_depth // slices)
    return g.kh * slices, 1, size, True


def lower_conv_nhwc(ctx: LowerContext, group: FusedGroup) -> list[K.Stmt]:
    """The kernel of one dense NHWC conv group (weights packed by pack_nhwc_weight), or the
    Winograd kernel where winograd_plan says so."""
    node = group.anchor
    plan = winograd_plan(node, ctx.storage.vector_bits)
    if plan is not None:
        return lower_conv_winograd(ctx, group, plan)
    g = geometry(node)
    tile = nhwc_tile(node, ctx.storage.vector_bits)
    lanes, mr, nv, nr = tile.lanes, tile.mr, tile.nv, tile.nr
    names = ctx.names
    x, w = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    out_value = group_output(ctx, group)
    out, xbuf, wbuf = ctx.buf(out_value), ctx.buf(x), ctx.buf(w)
    ldo = ctx.storage.row_stride(out_value)   # OC, or more when writing into a concat

    m_total = g.n * g.oh * g.ow
    merged_out = [m_total, g.oc]

    def shape_of(v):
        return merged_shape(v.shape, out_value.shape, [(0, 3), (3, 4)])

    def at4(m: K.Expr, col: K.Expr) -> list[K.Expr]:
        """Output pixel m, channel col as an NHWC index."""
        return [m // (g.oh * g.ow), (m // g.ow) % g.oh, m % g.ow, col]

    steps = steps_of(group.nodes[1:], node.output, bias)
    mergeable = all(shape_of(v) is not None for _, ins, _, _ in steps for v in ins
                    if v is not None)
    ep = tile_epilogue(steps, merged_out, shape_of, lanes) if steps and mergeable else None
    vector_finish = mergeable

    tpr = -(-g.row_len // mr)
    ragged = g.row_len % mr
    tiles = g.rows * tpr
    panels, full_panels = -(-g.oc // nr), g.oc // nr
    kblocks, per_block, slice_depth, sliced = _k_blocks(g, nr)
    slices = -(-g.seg_depth // slice_depth) if sliced else 1
    a_rs = g.c if g.flat else g.sw * g.c
    a_seg = g.dh * g.w * g.c

    chunks, pgroups = _split(tiles, max(full_panels, 1), 4 * g.depth * g.oc,
                             4 * g.n * g.h * g.w * g.c)
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
        """(input offset, output row index, tile-in-row index) of tile ti."""
        r, tt = ti // tpr, ti % tpr
        if g.flat:
            a0 = tt * (mr * g.c)
        else:
            a0 = (r // g.oh) * (g.h * g.w * g.c) + (r % g.oh) * (g.sh * g.w * g.c) \
                + tt * (mr * g.sw * g.c)
        return a0, r * g.row_len + tt * mr, tt

    def block(kb: K.Expr) -> tuple[K.Expr, K.Expr, K.Expr, K.Expr]:
        """(A offset, packed-B row, segments, depth) of K block kb."""
        if sliced:
            seg, part = kb // slices, kb % slices
            k0 = part * slice_depth
            return (seg * a_seg + k0, seg * g.seg_depth + k0, K.const(1),
                    K.minimum(slice_depth, g.seg_depth - k0))
        seg0 = kb * per_block
        return (seg0 * a_seg, seg0 * g.seg_depth, K.minimum(per_block, g.kh - seg0),
                K.const(g.seg_depth))

    streaming = 4 * g.depth * g.oc > STREAMED_WEIGHTS

    def micro(rows: int, kb: K.Expr, a0: K.Expr, row0: K.Expr, pj: K.Expr, ti: K.Expr
              ) -> list[K.Stmt]:
        a_off, b_row, nseg, depth = block(kb)
        last = K.binary("==", kb, kblocks - 1)
        finish = None
        if ep is not None:
            finish = (last, ep.arguments(row0, pj * nr, g.oc, ctx.buf))

        def call(prefetch: bool) -> K.Invoke:
            fn = microkernel_function(lanes, rows, nv, a_rs, 1, nr, lanes, segmented=True,
                                      epilogue=ep, prefetch=prefetch)
            ahead = None
            if prefetch:   # the block this task needs next: the next panel, or next K block
                nxt = K.binary("<", pj + 1, p1)
                n_pj = K.select(nxt, pj + 1, p0)
                _, n_row, _, _ = block(K.select(nxt, kb, kb + 1))
                ahead = (wbuf, n_pj * (g.depth * nr) + n_row * nr)
            return invoke(fn, depth, (xbuf, a0 + a_off),
                          (wbuf, pj * (g.depth * nr) + b_row * nr),
                          (out, row0 * ldo + pj * nr), ldo, K.binary(">", kb, 0),
                          segments=(nseg, a_seg), finish=finish, prefetch=ahead)

        # weights too big for the caches: the first tile of each block fetches the next
        calls: list[K.Stmt] = [K.If(K.binary("==", ti, t0), [call(True)], [call(False)])] \
            if streaming else [call(False)]
        if ep is not None or not steps:
            return calls
        finish_tile = _finish_in_memory(ctx, steps, out, ldo, row0, rows, pj * nr, nv, lanes,
                                        merged_out, shape_of, at4, vector_finish)
        return calls + [K.If(last, finish_tile)]

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
        body.append(K.If(K.binary("==", t % pgroups, pgroups - 1),
                         _edge_panel(ctx, g, tile, ep, steps, tiles, t0, t1, tile_at, block,
                                     kblocks, tpr, ragged, a_rs, a_seg, xbuf, wbuf, out,
                                     ldo, at4)))
    return [K.For(t, K.const(0), K.const(tasks), body, "parallel")]


def _split(tiles: int, panels: int, b_bytes: int, a_bytes: int) -> tuple[int, int]:
    """(tile chunks, panel groups) for the tasks: at least MIN_TASKS where the shape allows,
    and of those the split that moves the fewest bytes. Each tile chunk streams all the
    weights of its panel groups (b_bytes in all), each panel group all of the input of its
    tiles (a_bytes): small images with many channels split the panels, big ones the tiles."""
    want = min(MIN_TASKS, tiles * panels)
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


def _finish_in_memory(ctx, steps, out, ldo, row0, rows, col0, nv, lanes, merged_out,
                      shape_of, at4, vectors: bool) -> list[K.Stmt]:
    """The epilogue over a finished rows x nr tile in the output (pixel stride ldo): on
    vectors, or on scalars where an op has no vector form (or an operand does not fold to
    [M, N])."""
    i = ctx.names.var("i")
    stmts: list[K.Stmt] = []
    for v in range(nv):
        index = (row0 + i) * ldo + col0 + v * lanes
        res = vector_steps(ctx, steps, K.VecLoad(out, index, lanes), lanes, merged_out,
                           [row0 + i, col0 + v * lanes], shape_of) if vectors else None
        if res is None:
            return _scalar_finish(ctx, steps, out, out, 0, row0, rows, col0, nv * lanes,
                                  ldo, at4)
        lets, value = res
        stmts += lets + [K.VecStore(out, index, value, lanes)]
    return [K.For(i, K.const(0), K.const(rows), stmts)]


def _scalar_finish(ctx, steps, src, out, src_stride, row0, rows, col0, ncols, ldo, at4
                   ) -> list[K.Stmt]:
    """out[row0 + i, col0 + j] = steps(src[...]) for a rows x ncols tile of the output
    (pixel stride ldo); src is the output itself (src_stride 0) or a local tile with row
    stride src_stride. Operands are indexed in four dims (at4), as the graph shapes them."""
    i, j = ctx.names.var("i"), ctx.names.var("jc")
    index = (row0 + i) * ldo + col0 + j
    source = K.Load(src, i * src_stride + j) if src_stride else K.Load(out, index)
    out_shape = [0, 0, 0, 0]   # only the rank matters to broadcast_index
    lets, value = apply_steps(ctx, steps, source, out_shape, at4(row0 + i, col0 + j))
    return [K.For(i, K.const(0), K.const(rows), [
        K.For(j, K.const(0), K.const(ncols), lets + [K.Store(out, index, value)], "vector")])]


def _edge_panel(ctx, g, tile, ep, steps, tiles, t0, t1, tile_at, block, kblocks, tpr, ragged,
                a_rs, a_seg, xbuf, wbuf, out, ldo, at4) -> list[K.Stmt]:
    """The last panel (OC % nr columns): each tile over all of K in a local tile, then to
    the output with the epilogue on scalars."""
    names = ctx.names
    lanes, mr, nv, nr = tile.lanes, tile.mr, tile.nv, tile.nr
    pj = g.oc // nr
    ncols = g.oc - pj * nr
    tbuf = K.Buffer(names.var("edge").name, DType.float32, mr * nr, "local")
    ctx.buffers[id(tbuf)] = tbuf

    def run(rows: int, a0: K.Expr, row0: K.Expr) -> list[K.Stmt]:
        kb = names.var("kb")
        a_off, b_row, nseg, depth = block(kb)
        fn = microkernel_function(lanes, rows, nv, a_rs, 1, nr, lanes, segmented=True)
        call = invoke(fn, depth, (xbuf, a0 + a_off), (wbuf, pj * (g.depth * nr) + b_row * nr),
                      (tbuf, K.const(0)), nr, K.binary(">", kb, 0), segments=(nseg, a_seg))
        copy = _scalar_finish(ctx, steps, tbuf, out, nr, row0, rows, K.const(pj * nr), ncols,
                              ldo, at4)
        return [K.For(kb, K.const(0), K.const(kblocks), [call])] + copy

    ti = names.var("ti")
    a0v, row0v, ttv = names.var("a0"), names.var("row0"), names.var("tt")
    a0, row0, tt = tile_at(ti)
    inner = run(mr, a0v, row0v)
    if ragged:
        inner = [K.If(K.binary("==", ttv, tpr - 1), run(ragged, a0v, row0v), inner)]
    return [K.For(ti, t0, t1, [K.Let(a0v, a0), K.Let(row0v, row0), K.Let(ttv, tt)] + inner)]
