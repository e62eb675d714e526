"""conv2d at stride 1 as a direct GEMM over a padded band of input rows, panel by panel.

At stride 1, output position (oh, ow) reads input (oh + kh*dh - pt, ow + kw*dw - pl). In a
zero-padded copy of the input with row length Wp = W + pads, flattened, the positions
q = oh*Wp + ow of consecutive outputs are consecutive, and tap (kh, kw) sits at
q + kh*dh*Wp + kw*dw: one vector load per tap and vector, across output rows. Columns
ow >= OW of this padded grid are computed and thrown away.

A task is (image, group, chunk of R output rows, chunk of output-channel panels); R is
picked so that R*Wp is (nearly) a multiple of nr, which keeps the thrown-away columns few.
The task copies its R + (KH-1)*dh padded input rows into its slice of the arena scratch
(the "band": zero borders, then plain vector copies of the rows), then, panel of mr output
channels by panel, runs the microkernel over every block of nr positions. The panel's
weights (mr x KC) stay in L1 while the band streams from L2: the loop order

    for panel:                  A = W[panel] (mr x K, packed)
        for kc in K chunks:     A[:, kc] (mr x KC) stays in L1 however deep K is
            for block:          part[:, block] (+)= A[:, kc] @ band[kc, block]
        for output row:         out[panel, row] = epilogue(part[:, row] + bias)  (vectorized)
"""

from __future__ import annotations

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup
from .. import kernel_ir as K
from .common import LowerContext, epilogue, group_output
from ..schedules import BandSchedule
from .conv_gemm import nchw_gemm_rejects
from .conv_geometry import conv_geometry
from .gemm import Tile, fma_loop, merged_shape, vec_var

def band_rejects(group: FusedGroup) -> str | None:
    """Why the band kernel cannot run this conv group: it needs stride 1 (any kernel size,
    padding, dilation) and what every NCHW GEMM kernel needs."""
    if tuple(group.anchor.attrs["strides"]) != (1, 1):
        return "the band kernel needs stride 1"
    return nchw_gemm_rejects(group)


def _rows_per_task(oh: int, ow: int, wp: int, nr: int, schedule: BandSchedule) -> int:
    """Output rows per task: the fewest wasted columns (computed but not output) among
    counts giving min_positions..max_positions padded positions (or the whole image)."""
    best, best_waste = 1, None
    for rows in range(1, oh + 1):
        positions = rows * wp
        if positions > schedule.max_positions and rows > 1:
            break
        chunks = -(-oh // rows)
        computed = chunks * (-(-positions // nr) * nr)
        waste = computed / (oh * ow)
        if positions < schedule.min_positions and rows < oh:
            waste += 1.0     # too little work per band: prefer bigger tasks
        if best_waste is None or waste < best_waste - 1e-9:
            best, best_waste = rows, waste
    return best


def band_microkernel(names: K.Names, tile: Tile, rows: int, k_lo: K.Expr, k_hi: K.Expr,
                 a_at, b_at, acc: K.Buffer, acc_at: K.Expr, row_stride: int, zero_init: bool
                 ) -> list[K.Stmt]:
    """Accumulate a rows x nr tile over k in [k_lo, k_hi) into acc[acc_at + i*row_stride
    + j]: starting from zero (zero_init) or from what acc holds."""
    lanes = tile.lanes
    zero = K.Broadcast(K.const(0.0, DType.float32), lanes)
    accs = [[vec_var(names, f"c{i}_{v}", lanes) for v in range(tile.nv)] for i in range(rows)]

    def at(i: int, v: int) -> K.Expr:
        return acc_at + (i * row_stride + v * lanes)

    stmts: list[K.Stmt] = []
    if zero_init:
        stmts += [K.Let(accs[i][v], zero) for i in range(rows) for v in range(tile.nv)]
    else:
        stmts += [K.Let(accs[i][v], K.VecLoad(acc, at(i, v), lanes))
                  for i in range(rows) for v in range(tile.nv)]
    stmts.append(fma_loop(names, tile, rows, k_lo, k_hi, a_at, b_at, accs))
    stmts += [K.VecStore(acc, at(i, v), accs[i][v], lanes)
              for i in range(rows) for v in range(tile.nv)]
    return stmts


def lower_conv_band(ctx: LowerContext, group: FusedGroup, schedule: BandSchedule
                    ) -> list[K.Stmt]:
    """The kernel of one stride-1 conv group (weights packed by conv_gemm.pack_conv_weight)."""
    tile = Tile(ctx.storage.lanes, schedule.mr, schedule.nv)
    node = group.anchor
    (x, w, bias, (n_, c_, h_, w_), (oc_, icg, kh_, kw_), (oh_, ow_), _, (dh, dw),
     (pt, pl, pb, pr), groups) = conv_geometry(node)
    ocg = oc_ // groups
    depth = icg * kh_ * kw_
    nr, mr, lanes = tile.nr, tile.mr, tile.lanes
    wp = w_ + pl + pr
    rows_per_task = _rows_per_task(oh_, ow_, wp, nr, schedule)
    row_chunks = -(-oh_ // rows_per_task)
    max_blocks = -(-(rows_per_task * wp) // nr)
    band_rows = rows_per_task + (kh_ - 1) * dh
    # room for the last block's overhang past the band's rows
    chan_stride = band_rows * wp + max_blocks * nr - rows_per_task * wp + (kw_ - 1) * dw
    lines = -(-chan_stride // 16)
    # an odd number of 64-byte lines: taps of successive channels fall in different L1 sets
    chan_stride = (lines + 1 - lines % 2) * 16
    panels = -(-ocg // mr)
    full_panels = ocg // mr
    base_tasks = n_ * groups * row_chunks
    oc_chunks = max(1, min(panels, -(-schedule.min_tasks // base_tasks)))
    panels_per_chunk = -(-panels // oc_chunks)
    oc_chunks = -(-panels // panels_per_chunk)
    tasks = base_tasks * oc_chunks
    k_chunks = -(-depth // schedule.k_chunk)
    k_chunk = -(-depth // k_chunks)
    names = ctx.names

    out = ctx.buf(group_output(ctx, group))
    wbuf = ctx.buf(w)
    band = ctx.storage.scratch(names.var("band").name, DType.float32,
                               tasks * icg * chan_stride)
    row_len = max_blocks * nr
    part = K.Buffer(names.var("part").name, DType.float32, mr * row_len, "local")
    koff = K.Buffer(names.var("koff").name, DType.int64, depth, "local")
    for b in (band, part, koff):
        ctx.buffers[id(b)] = b

    t = names.var("task")
    mc = t % oc_chunks
    rc = (t // oc_chunks) % row_chunks
    g = (t // (oc_chunks * row_chunks)) % groups
    n = t // (oc_chunks * row_chunks * groups)
    oh0, nrows, nblocks = names.var("oh0"), names.var("nrows"), names.var("nblocks")
    band_base = t * (icg * chan_stride)
    body: list[K.Stmt] = [K.Let(oh0, rc * rows_per_task),
                          K.Let(nrows, K.minimum(rows_per_task, oh_ - oh0)),
                          K.Let(nblocks, (nrows * wp + (nr - 1)) // nr)]

    # The band: zeros | input row | zeros per padded row, zero rows outside the image, and
    # zeros past the last row (the last block's overhang reads them).
    ic, r, c, ih = names.var("ic"), names.var("r"), names.var("c"), names.var("ih")
    zero = K.const(0.0, DType.float32)
    chan = band_base + ic * chan_stride
    at = chan + r * wp
    x_row = ((n * c_ + g * icg + ic) * h_ + ih) * w_
    copy = [K.For(c, K.const(0), K.const(pl), [K.Store(band, at + c, zero)], "vector"),
            K.For(c, K.const(0), K.const(w_), [K.Store(band, at + pl + c, ctx.load(x, x_row + c))],
                  "vector"),
            K.For(c, K.const(pl + w_), K.const(wp), [K.Store(band, at + c, zero)], "vector")]
    blank = [K.For(c, K.const(0), K.const(wp), [K.Store(band, at + c, zero)], "vector")]
    row_ok = K.all_of([K.binary(">=", ih, 0), K.binary("<", ih, h_)])
    tail = names.var("z")
    body.append(K.For(ic, K.const(0), K.const(icg), [
        K.For(r, K.const(0), K.const(band_rows), [K.Let(ih, oh0 + r - pt),
                                                   K.If(row_ok, copy, blank)]),
        K.For(tail, K.const(band_rows * wp), K.const(chan_stride),
              [K.Store(band, chan + tail, zero)], "vector"),
    ]))

    # koff[k]: where tap k = (ic, kh, kw) starts in the band.
    kic, kkh, kkw = names.var("kic"), names.var("kkh"), names.var("kkw")
    body.append(K.For(kic, K.const(0), K.const(icg), [
        K.For(kkh, K.const(0), K.const(kh_), [
            K.For(kkw, K.const(0), K.const(kw_), [
                K.Store(koff, (kic * kh_ + kkh) * kw_ + kkw,
                        band_base + kic * chan_stride + kkh * (dh * wp) + kkw * dw)])])]))

    out_shape = [n_, oc_, oh_ * ow_]
    spans = [(0, 1), (1, 2), (2, 4)]
    full_shape = node.output.shape

    def shape_of(v):
        return merged_shape(v.shape, full_shape, spans)

    def panel(mp: K.Expr, rows: int) -> list[K.Stmt]:
        oc0 = mp * mr
        a_base = g * (ocg * depth) + oc0 * depth
        blk = names.var("blk")

        def a_at(i: int, k: K.Expr) -> K.Expr:
            return K.Load(wbuf, a_base + k * rows + i)

        def b_at(k: K.Expr, v: int) -> K.Expr:
            return K.VecLoad(band, K.Load(koff, k) + blk * nr + v * lanes, lanes)

        stmts: list[K.Stmt] = []
        if k_chunks == 1:
            kernel = band_microkernel(names, tile, rows, K.const(0), K.const(depth), a_at, b_at,
                                  part, blk * nr, row_len, True)
            stmts.append(K.For(blk, K.const(0), nblocks, kernel))
        else:
            zi = names.var("zi")
            stmts.append(K.For(zi, K.const(0), K.const(mr * row_len),
                               [K.Store(part, zi, zero)], "vector"))
            kc = names.var("kc")
            k_lo = kc * k_chunk
            kernel = band_microkernel(names, tile, rows, k_lo,
                                  K.minimum(depth, k_lo + k_chunk), a_at, b_at,
                                  part, blk * nr, row_len, False)
            stmts.append(K.For(kc, K.const(0), K.const(k_chunks), [
                K.For(blk, K.const(0), nblocks, kernel)]))

        # Bias and epilogue on the way out, output row by output row (contiguous).
        i, orow, ow = names.var("i"), names.var("orow"), names.var("ow")
        oc = g * ocg + oc0 + i
        p = (oh0 + orow) * ow_ + ow
        value: K.Expr = K.Load(part, i * row_len + orow * wp + ow)
        if bias is not None:
            value = value + ctx.load(bias, oc)
        lets, value = epilogue(ctx, group.nodes[1:], node.output, value, out_shape,
                               [n, oc, p], shape_of)
        row_base = (n * oc_ + oc) * (oh_ * ow_)
        stmts.append(K.For(i, K.const(0), K.const(rows), [
            K.For(orow, K.const(0), nrows, [
                K.For(ow, K.const(0), K.const(ow_), lets + [K.Store(out, row_base + p, value)],
                      "vector")])]))
        return stmts

    mp = names.var("mp")
    mp_lo = mc * panels_per_chunk
    mp_hi = names.var("mp_hi")
    body += [K.Let(mp_hi, K.minimum(full_panels, mp_lo + panels_per_chunk)),
             K.For(mp, mp_lo, mp_hi, panel(mp, mr))]
    if ocg % mr:
        last = K.binary("==", mc, oc_chunks - 1)
        body.append(K.If(last, panel(K.const(full_panels), ocg % mr)))
    return [K.For(t, K.const(0), K.const(tasks), body, "parallel")]
