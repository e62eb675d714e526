"""conv2d (any stride) as a GEMM over im2col chunks: out[oc, p] = sum_k W[oc, k] * col[k, p].

k = (ic, kh, kw), p = (oh, ow), per image and group. W is packed at compile time into panels
of mr output channels (gemm.pack_rows, via conv_gemm.pack_conv_weight). A task is (image,
group, chunk of positions, chunk of output-channel panels); the loop nest is the classic
cache-blocked GEMM, K outermost so one im2col chunk (KC x PC floats) serves every panel:

    for kc in K chunks:                       col = im2col(x)[kc, positions]   (L2)
        for panel:                            A = W[panel, kc]  (mr x KC)      (L1)
            for block of nr positions:        part[panel, block] += A @ col[:, block]
    out[oc, p] = epilogue(part[oc, p] + bias[oc])   (contiguous rows: vectorized)

`part` holds the task's partial sums in the arena scratch beside the column chunk.
"""

from __future__ import annotations

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup
from .. import kernel_ir as K
from ..schedules import Im2colSchedule
from .common import LowerContext, epilogue, group_output
from .conv_band import band_microkernel
from .conv_geometry import conv_geometry
from .gemm import Tile, merged_shape

def _rows_per_chunk(oh: int, ow: int, nr: int, max_positions: int) -> int:
    """Output rows per position chunk: the least padding (each chunk is rounded up to nr
    columns) among chunks of at most max_positions positions (at least one row)."""
    best, best_cost = 1, None
    for rows in range(1, oh + 1):
        if rows > 1 and rows * ow > max_positions:
            break
        cost = -(-oh // rows) * (-(-(rows * ow) // nr) * nr)
        if best_cost is None or cost < best_cost:
            best, best_cost = rows, cost
    return best


def lower_conv_im2col(ctx: LowerContext, group: FusedGroup, schedule: Im2colSchedule
                      ) -> list[K.Stmt]:
    """The kernel of one conv group (weights packed by conv_gemm.pack_conv_weight)."""
    tile = Tile(ctx.storage.lanes, schedule.mr, schedule.nv)
    node = group.anchor
    (x, w, bias, (n_, c_, h_, w_), (oc_, icg, kh_, kw_), (oh_, ow_), (sh, sw), (dh, dw),
     (pt, pl, _, _), groups) = conv_geometry(node)
    ocg = oc_ // groups
    depth = icg * kh_ * kw_
    positions = oh_ * ow_
    nr, mr, lanes = tile.nr, tile.mr, tile.lanes
    rows_pc = _rows_per_chunk(oh_, ow_, nr, schedule.max_positions)
    pc = -(-(rows_pc * ow_) // nr) * nr
    p_chunks = -(-oh_ // rows_pc)
    panels = -(-ocg // mr)
    full_panels = ocg // mr
    base_tasks = n_ * groups * p_chunks
    oc_chunks = max(1, min(panels, -(-schedule.min_tasks // base_tasks)))
    panels_per_chunk = -(-panels // oc_chunks)
    oc_chunks = -(-panels // panels_per_chunk)
    tasks = base_tasks * oc_chunks
    k_chunks = -(-depth // schedule.k_chunk)
    kc_len = -(-depth // k_chunks)
    rows_per_task = panels_per_chunk * mr
    names = ctx.names

    out = ctx.buf(group_output(ctx, group))
    wbuf = ctx.buf(w)
    col_floats = kc_len * pc
    part_floats = (rows_per_task if k_chunks > 1 else mr) * pc
    per_task = col_floats + part_floats
    scratch = ctx.storage.scratch(names.var("scr").name, DType.float32, tasks * per_task)
    col, part = scratch, scratch
    for b in (scratch,):
        ctx.buffers[id(b)] = b

    t = names.var("task")
    mc = t % oc_chunks
    pcn = (t // oc_chunks) % p_chunks
    g = (t // (oc_chunks * p_chunks)) % groups
    n = t // (oc_chunks * p_chunks * groups)
    oh0, nrows = names.var("oh0"), names.var("nrows")
    p0, npos, nblocks = names.var("p0"), names.var("npos"), names.var("nblocks")
    col_base = t * per_task
    part_base = col_base + col_floats
    body: list[K.Stmt] = [K.Let(oh0, pcn * rows_pc), K.Let(nrows, K.minimum(rows_pc, oh_ - oh0)),
                          K.Let(p0, oh0 * ow_), K.Let(npos, nrows * ow_),
                          K.Let(nblocks, (npos + (nr - 1)) // nr)]
    zero = K.const(0.0, DType.float32)

    mp_lo = mc * panels_per_chunk
    mp_hi = names.var("mp_hi")
    body.append(K.Let(mp_hi, K.minimum(full_panels, mp_lo + panels_per_chunk)))
    has_tail = ocg % mr != 0
    is_last = K.binary("==", mc, oc_chunks - 1)

    def im2col(k_lo: K.Expr, k_len: K.Expr) -> list[K.Stmt]:
        """col[kk, rr*OW + ow] = x[n, g*icg + ic, (oh0+rr)*sh + kh*dh - pt, ow*sw + kw*dw - pl]
        or 0 outside the image, k = k_lo + kk = (ic, kh, kw); zeros past the chunk's end."""
        kk, kg, rr, c = names.var("kk"), names.var("kg"), names.var("rr"), names.var("c")
        ic, kh, kw = names.var("ic"), names.var("kh"), names.var("kw")
        ih, lo, hi = names.var("ih"), names.var("c_lo"), names.var("c_hi")
        row = col_base + kk * pc + rr * ow_
        x_row = ((n * c_ + g * icg + ic) * h_ + ih) * w_ + (kw * dw - pl)
        copy = [K.For(c, K.const(0), lo, [K.Store(col, row + c, zero)], "vector"),
                K.For(c, lo, hi, [K.Store(col, row + c, ctx.load(x, x_row + c * sw))],
                      "vector"),
                K.For(c, hi, K.const(ow_), [K.Store(col, row + c, zero)], "vector")]
        blank = [K.For(c, K.const(0), K.const(ow_), [K.Store(col, row + c, zero)], "vector")]
        row_ok = K.all_of([K.binary(">=", ih, 0), K.binary("<", ih, h_)])
        return [K.For(kk, K.const(0), k_len, [
            K.Let(kg, k_lo + kk),
            K.Let(ic, kg // (kh_ * kw_)), K.Let(kh, (kg // kw_) % kh_), K.Let(kw, kg % kw_),
            K.Let(lo, K.minimum(ow_, K.maximum(0, (pl - kw * dw + (sw - 1)) // sw))),
            K.Let(hi, K.maximum(lo, K.minimum(ow_, (w_ - 1 + pl - kw * dw + sw) // sw))),
            K.For(rr, K.const(0), nrows, [K.Let(ih, (oh0 + rr) * sh + kh * dh - pt),
                                          K.If(row_ok, copy, blank)]),
            K.For(c, npos, K.const(pc), [K.Store(col, col_base + kk * pc + c, zero)],
                  "vector")])]

    def panel_blocks(mp: K.Expr, rows: int, k_lo: K.Expr, k_hi: K.Expr,
                     single: bool) -> list[K.Stmt]:
        """Every block of the chunk against panel mp over k in [k_lo, k_hi)."""
        a_base = g * (ocg * depth) + mp * (mr * depth)
        blk = names.var("blk")

        def a_at(i: int, k: K.Expr) -> K.Expr:
            return K.Load(wbuf, a_base + k * rows + i)

        def b_at(k: K.Expr, v: int) -> K.Expr:
            return K.VecLoad(col, col_base + (k - k_lo) * pc + blk * nr + v * lanes, lanes)

        if single:   # the panel's rows of the chunk, then out through the epilogue
            kernel = band_microkernel(names, tile, rows, k_lo, k_hi, a_at, b_at, part,
                                      part_base + blk * nr, pc, True)
            return [K.For(blk, K.const(0), nblocks, kernel)] + write_out(
                mp, rows, lambda i, jc: K.Load(part, part_base + i * pc + jc), K.const(0),
                npos)
        at = part_base + (mp - mp_lo) * (mr * pc) + blk * nr
        kernel = band_microkernel(names, tile, rows, k_lo, k_hi, a_at, b_at, part, at, pc,
                                  False)
        return [K.For(blk, K.const(0), nblocks, kernel)]

    def write_out(mp: K.Expr, rows: int, value_at, j0: K.Expr, count: K.Expr
                  ) -> list[K.Stmt]:
        """out[oc, p0 + j0 + jc] = epilogue(value_at(i, jc) + bias) for jc < count."""
        i, jc = names.var("i"), names.var("jc")
        oc = g * ocg + mp * mr + i
        value: K.Expr = value_at(i, jc)
        if bias is not None:
            value = value + ctx.load(bias, oc)
        full_shape = node.output.shape
        lets, value = epilogue(ctx, group.nodes[1:], node.output, value,
                               [n_, oc_, positions], [n, oc, p0 + j0 + jc],
                               lambda v: merged_shape(v.shape, full_shape,
                                                      [(0, 1), (1, 2), (2, 4)]))
        index = (n * oc_ + oc) * positions + p0 + j0 + jc
        return [K.For(i, K.const(0), K.const(rows), [
            K.For(jc, K.const(0), count, lets + [K.Store(out, index, value)], "vector")])]

    def over_panels(make) -> list[K.Stmt]:
        mp = names.var("mp")
        stmts: list[K.Stmt] = [K.For(mp, mp_lo, mp_hi, make(mp, mr))]
        if has_tail:
            stmts.append(K.If(is_last, make(K.const(full_panels), ocg % mr)))
        return stmts

    if k_chunks == 1:
        body += im2col(K.const(0), K.const(depth))
        body += over_panels(lambda mp, rows: panel_blocks(mp, rows, K.const(0),
                                                          K.const(depth), True))
        return [K.For(t, K.const(0), K.const(tasks), body, "parallel")]

    zi = names.var("zi")
    body.append(K.For(zi, K.const(0), K.const(part_floats),
                      [K.Store(part, part_base + zi, zero)], "vector"))
    kc = names.var("kc")
    k_lo, k_hi = names.var("k_lo"), names.var("k_hi")
    chunk: list[K.Stmt] = [K.Let(k_lo, kc * kc_len), K.Let(k_hi, K.minimum(depth, k_lo + kc_len))]
    chunk += im2col(k_lo, k_hi - k_lo)
    chunk += over_panels(lambda mp, rows: panel_blocks(mp, rows, k_lo, k_hi, False))
    body.append(K.For(kc, K.const(0), K.const(k_chunks), chunk))
    body += over_panels(lambda mp, rows: write_out(
        mp, rows, lambda i, jc: K.Load(part, part_base + (mp - mp_lo) * (mr * pc) + i * pc + jc),
        K.const(0), npos))
    return [K.For(t, K.const(0), K.const(tasks), body, "parallel")]
