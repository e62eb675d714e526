"""conv2d at stride 1 as a direct GEMM over a padded band of input rows (no im2col).

At stride 1, output position (oh, ow) reads input (oh + kh*dh - pt, ow + kw*dw - pl). In a
zero-padded copy of the input with row length Wp = W + pads, flattened, the positions
q = oh*Wp + ow of consecutive outputs are consecutive, and tap (kh, kw) sits at
q + kh*dh*Wp + kw*dw: one vector load per tap and vector, across output rows. Columns
ow >= OW of this padded grid are computed and thrown away (a (Wp - OW)/Wp waste).

A task is (image, group, chunk of R output rows, chunk of output-channel panels). It copies
the R + (KH-1)*dh padded input rows it needs into its own slice of the arena scratch (the
"band", zero borders included), then for every block of nr positions and every panel of
output channels runs the microkernel (k = (ic, kh, kw) through a table of band offsets), and writes the
tile through bias and the fused epilogue, skipping the padding columns.
"""

from __future__ import annotations

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup
from .. import kernel_ir as K
from .common import LowerContext, epilogue, group_output
from .gemm import Tile, merged_shape, microkernel

#: aim for about this many output positions per task (several nr blocks share a band)
_POSITIONS_PER_TASK = 96
#: split output channels until there are about this many tasks (2 threads, with slack)
_MIN_TASKS = 8


def direct_applies(group: FusedGroup) -> bool:
    """Stride 1 (any kernel size, padding, dilation): the band layout works."""
    return tuple(group.anchor.attrs["strides"]) == (1, 1)


def lower_conv_direct(ctx: LowerContext, group: FusedGroup, tile: Tile) -> list[K.Stmt]:
    """The kernel of one stride-1 conv group (weights packed by conv_gemm.pack_conv_weight)."""
    node = group.anchor
    x, w = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    n_, c_, h_, w_ = x.shape
    oc_, icg, kh_, kw_ = w.shape
    _, _, oh_, ow_ = node.output.shape
    dh, dw = node.attrs["dilations"]
    pt, pl, pb, pr = node.attrs["pads"]
    groups = node.attrs["group"]
    ocg = oc_ // groups
    depth = icg * kh_ * kw_
    nr, mr = tile.nr, tile.mr
    wp = w_ + pl + pr
    rows_per_task = max(1, min(oh_, -(-_POSITIONS_PER_TASK // wp)))
    row_chunks = -(-oh_ // rows_per_task)
    band_rows = rows_per_task + (kh_ - 1) * dh
    chan_stride = (band_rows + 1) * wp + nr          # room for the last block's overhang
    # an odd number of 64-byte lines: taps of successive channels fall in different L1 sets
    lines = -(-chan_stride // 16)
    chan_stride = (lines + 1 - lines % 2) * 16
    panels = -(-ocg // mr)
    full_panels = ocg // mr
    base_tasks = n_ * groups * row_chunks
    oc_chunks = max(1, min(panels, -(-_MIN_TASKS // base_tasks)))
    panels_per_chunk = -(-panels // oc_chunks)
    oc_chunks = -(-panels // panels_per_chunk)
    tasks = base_tasks * oc_chunks
    names = ctx.names

    out = ctx.buf(group_output(ctx, group))
    wbuf = ctx.buf(w)
    band = ctx.storage.scratch(names.var("band").name, DType.float32,
                               tasks * icg * chan_stride)
    acc = K.Buffer(names.var("tile").name, DType.float32, mr * nr, "local")
    dst = K.Buffer(names.var("dst").name, DType.int64, nr, "local")
    koff = K.Buffer(names.var("koff").name, DType.int64, depth, "local")
    for b in (band, acc, dst, koff):
        ctx.buffers[id(b)] = b

    t = names.var("task")
    mc = t % oc_chunks
    rc = (t // oc_chunks) % row_chunks
    g = (t // (oc_chunks * row_chunks)) % groups
    n = t // (oc_chunks * row_chunks * groups)
    oh0 = names.var("oh0")
    nrows = names.var("nrows")
    band_base = t * (icg * chan_stride)
    body: list[K.Stmt] = [K.Let(oh0, rc * rows_per_task),
                          K.Let(nrows, K.minimum(rows_per_task, oh_ - oh0))]

    # The band: padded rows oh0 .. oh0 + band_rows of this image and group, zero outside.
    ic, r, c = names.var("ic"), names.var("r"), names.var("c")
    ih, iw, xv = names.var("ih"), names.var("iw"), names.var("xv", x.dtype)
    inside = K.all_of([K.binary(">=", ih, 0), K.binary("<", ih, h_),
                       K.binary(">=", iw, 0), K.binary("<", iw, w_)])
    clamped = K.minimum(K.maximum(ih, 0), h_ - 1) * w_ + K.minimum(K.maximum(iw, 0), w_ - 1)
    chan = band_base + ic * chan_stride
    copy_row = K.For(c, K.const(0), K.const(wp), [
        K.Let(iw, c - pl),
        K.Let(xv, ctx.load(x, ((n * c_ + g * icg + ic) * h_) * w_ + clamped)),
        K.Store(band, chan + r * wp + c, K.select(inside, xv, K.const(0.0, x.dtype))),
    ], "vector")
    tail = names.var("z")
    body.append(K.For(ic, K.const(0), K.const(icg), [
        K.For(r, K.const(0), K.const(band_rows), [K.Let(ih, oh0 + r - pt), copy_row]),
        K.For(tail, K.const(band_rows * wp), K.const(chan_stride),
              [K.Store(band, chan + tail, K.const(0.0, DType.float32))], "vector"),
    ]))

    # koff[k]: where tap k = (ic, kh, kw) starts in the band (one flat k loop in the
    # microkernel keeps the C compiler from interleaving taps and running out of registers).
    kic, kkh, kkw = names.var("kic"), names.var("kkh"), names.var("kkw")
    body.append(K.For(kic, K.const(0), K.const(icg), [
        K.For(kkh, K.const(0), K.const(kh_), [
            K.For(kkw, K.const(0), K.const(kw_), [
                K.Store(koff, (kic * kh_ + kkh) * kw_ + kkw,
                        kic * chan_stride + kkh * (dh * wp) + kkw * dw)])])]))

    # Blocks of nr positions over nrows * wp padded-grid positions.
    blk = names.var("blk")
    q0 = blk * nr
    positions = nrows * wp
    out_shape = [n_, oc_, oh_ * ow_]
    spans = [(0, 1), (1, 2), (2, 4)]
    full_shape = node.output.shape

    def shape_of(v):
        return merged_shape(v.shape, full_shape, spans)

    def panel(mp: K.Expr, rows: int) -> list[K.Stmt]:
        oc0 = mp * mr
        a_base = g * (ocg * depth) + oc0 * depth

        def a_at(i: int, k: K.Expr) -> K.Expr:
            return K.Load(wbuf, a_base + k * rows + i)

        def b_at(k: K.Expr, v: int) -> K.Expr:
            return K.VecLoad(band, band_base + K.Load(koff, k) + q0 + v * tile.lanes,
                             tile.lanes)

        stmts = microkernel(names, tile, rows, depth, a_at, b_at, acc)
        # Bias and epilogue on the way out: straight into the output when the block lies in
        # one output row; else on the whole tile, branch-free so it vectorizes (a padding
        # column reads operands at position 0 and is never stored), then a scattered copy.
        def _bias(i: K.Expr, jc: K.Expr) -> K.Expr:
            value: K.Expr = K.Load(acc, i * nr + jc)
            if bias is not None:
                value = value + ctx.load(bias, g * ocg + oc0 + i)
            return value

        i, jc, p = names.var("i"), names.var("jc"), names.var("p")
        oc = g * ocg + oc0 + i
        lets, value = epilogue(ctx, group.nodes[1:], node.output, _bias(i, jc), out_shape,
                               [n, oc, p], shape_of)
        row_base = (n * oc_ + oc) * (oh_ * ow_)
        contiguous = [K.For(i, K.const(0), K.const(rows), [
            K.For(jc, K.const(0), K.const(nr), [K.Let(p, K.Load(dst, K.const(0)) + jc)] + lets
                  + [K.Store(out, row_base + p, value)], "vector")])]
        i2, jc2, p2 = names.var("i"), names.var("jc"), names.var("p")
        lets2, value2 = epilogue(ctx, group.nodes[1:], node.output, _bias(i2, jc2), out_shape,
                                 [n, g * ocg + oc0 + i2, p2], shape_of)
        scattered = [K.For(i2, K.const(0), K.const(rows), [
            K.For(jc2, K.const(0), K.const(nr), [
                K.Let(p2, K.maximum(K.Load(dst, jc2), 0))] + lets2
                + [K.Store(acc, i2 * nr + jc2, value2)], "vector")])]
        scattered.append(K.For(i, K.const(0), K.const(rows), [
            K.For(jc, K.const(0), K.const(nr), [
                K.Let(p, K.Load(dst, jc)),
                K.If(K.binary(">=", p, 0), [K.Store(out, row_base + p,
                                                    K.Load(acc, i * nr + jc))])])]))
        stmts.append(K.If(contig, contiguous, scattered))
        return stmts

    # dst[j]: where column j of the block goes in the output plane (-1: a padding column).
    j, qj = names.var("j"), names.var("qj")
    ow_j = qj % wp
    dst_fill = K.For(j, K.const(0), K.const(nr), [
        K.Let(qj, q0 + j),
        K.Store(dst, j, K.select(K.all_of([K.binary("<", qj, positions),
                                           K.binary("<", ow_j, ow_)]),
                                 (oh0 + qj // wp) * ow_ + ow_j, -1))])
    contig = names.var("contig")
    mp = names.var("mp")
    mp_lo = mc * panels_per_chunk
    mp_hi = names.var("mp_hi")
    block_body: list[K.Stmt] = [
        dst_fill,
        K.Let(contig, K.all_of([K.binary(">=", K.Load(dst, K.const(0)), 0),
                                K.binary("==", K.Load(dst, K.const(nr - 1)) - K.Load(dst, K.const(0)), nr - 1)])),
        K.Let(mp_hi, K.minimum(full_panels, mp_lo + panels_per_chunk)),
        K.For(mp, mp_lo, mp_hi, panel(mp, mr)),
    ]
    if ocg % mr:
        last = K.binary("==", mc, oc_chunks - 1)
        block_body.append(K.If(last, panel(K.const(full_panels), ocg % mr)))
    nblocks = (positions + (nr - 1)) // nr
    body.append(K.For(blk, K.const(0), nblocks, block_body))
    return [K.For(t, K.const(0), K.const(tasks), body, "parallel")]
