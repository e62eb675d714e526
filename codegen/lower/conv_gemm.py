"""conv2d as an implicit GEMM: out[oc, p] = sum_k W[oc, k] * col[k, p], k = (ic, kh, kw),
p = (oh, ow), per image and group.

W is packed at compile time into panels of `mr` output channels (gemm.pack_rows). A task is
one block of `nr` output positions of one image and group: it gathers col[:, block] into its
own slice of the arena scratch (im2col, zero where the window hangs over the padding or past
the last position), then runs the microkernel for every panel of output channels, applying
bias and the fused epilogue while it writes the tile. The block is small (K x nr floats), so
it stays in L1/L2 while the weight panels stream past it.
"""

from __future__ import annotations

import numpy as np

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup, Node
from .. import kernel_ir as K
from .common import LowerContext, epilogue, group_output
from .gemm import Tile, merged_shape, microkernel, pack_rows, tile_for

#: positions left of every valid window: marks a column past the last output position
_FAR = -(1 << 40)


def conv_gemm_tile(group: FusedGroup, vector_bits: int) -> Tile | None:
    """The tile the GEMM path uses for this conv group, or None (use the scalar loops)."""
    node = group.anchor
    tile = tile_for(vector_bits)
    if tile is None or node.op != "conv2d" or len(node.inputs[0].shape) != 4:
        return None
    x, w = node.inputs[0], node.inputs[1]
    if not w.is_constant or len(w.users) != 1 or x.dtype is not DType.float32:
        return None
    if group_output_dtype(group) is not DType.float32:
        return None
    oc, icg = w.shape[0], w.shape[1]
    if node.attrs["group"] > 1 and icg == 1 and oc == node.attrs["group"]:
        return None   # depthwise: too little reuse for a GEMM
    out_shape = node.output.shape
    for member in group.nodes[1:]:
        for v in member.inputs:
            if merged_shape(v.shape, out_shape, [(0, 1), (1, 2), (2, 4)]) is None:
                return None
    return tile


def group_output_dtype(group: FusedGroup) -> DType:
    return group.nodes[-1].output.dtype


def pack_conv_weight(node: Node, tile: Tile) -> np.ndarray:
    """W [OC, ICg, KH, KW] as row panels per group: [G][panels of mr oc][K][mr]."""
    w = node.inputs[1].data.astype(np.float32)
    groups = node.attrs["group"]
    ocg = w.shape[0] // groups
    flat = w.reshape(w.shape[0], -1)
    return np.concatenate([pack_rows(flat[g * ocg:(g + 1) * ocg], tile.mr)
                           for g in range(groups)])


def lower_conv_gemm(ctx: LowerContext, group: FusedGroup, tile: Tile) -> list[K.Stmt]:
    """The kernel of one conv group through im2col blocks and the microkernel."""
    node = group.anchor
    x, w = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    n_, c_, h_, w_ = x.shape
    oc_, icg, kh_, kw_ = w.shape
    _, _, oh_, ow_ = node.output.shape
    sh, sw = node.attrs["strides"]
    dh, dw = node.attrs["dilations"]
    pt, pl, _, _ = node.attrs["pads"]
    groups = node.attrs["group"]
    ocg = oc_ // groups
    depth = icg * kh_ * kw_
    positions = oh_ * ow_
    nr = tile.nr
    blocks = -(-positions // nr)
    tasks = n_ * groups * blocks
    names = ctx.names
    out = ctx.buf(group_output(ctx, group))
    wbuf = ctx.buf(w)
    col = ctx.storage.scratch(names.var("col").name, DType.float32, tasks * depth * nr)
    ih0 = K.Buffer(names.var("ih0").name, DType.int64, nr, "local")
    iw0 = K.Buffer(names.var("iw0").name, DType.int64, nr, "local")
    acc = K.Buffer(names.var("tile").name, DType.float32, tile.mr * nr, "local")
    for b in (col, ih0, iw0, acc):
        ctx.buffers[id(b)] = b

    t = names.var("task")
    n = t // (groups * blocks)
    g = (t // blocks) % groups
    p0 = (t % blocks) * nr
    col_base = t * (depth * nr)
    body: list[K.Stmt] = []

    # Window origins of the block's columns (a column past the end gets a far origin).
    j = names.var("j")
    p = p0 + j
    valid = K.binary("<", p, positions)
    body.append(K.For(j, K.const(0), K.const(nr), [
        K.Store(ih0, j, K.select(valid, (p // ow_) * sh - pt, _FAR)),
        K.Store(iw0, j, K.select(valid, (p % ow_) * sw - pl, _FAR)),
    ], "vector"))

    # im2col: col[k, j] = x[n, g*icg + ic, ih0[j] + kh*dh, iw0[j] + kw*dw] or 0.
    ic, kh, kw, jj = (names.var(v) for v in ("ic", "kh", "kw", "jj"))
    ih, iw = names.var("ih"), names.var("iw")
    row = (ic * kh_ + kh) * kw_ + kw
    inside = K.all_of([K.binary(">=", ih, 0), K.binary("<", ih, h_),
                       K.binary(">=", iw, 0), K.binary("<", iw, w_)])
    # The load is unconditional (clamped into the image) and then masked, so the C compiler
    # can vectorize the gather; a conditional load would keep it scalar.
    xv = names.var("xv", x.dtype)
    clamped = (K.minimum(K.maximum(ih, 0), h_ - 1) * w_ + K.minimum(K.maximum(iw, 0), w_ - 1))
    gather = K.For(jj, K.const(0), K.const(nr), [
        K.Let(ih, K.Load(ih0, jj) + kh * dh),
        K.Let(iw, K.Load(iw0, jj) + kw * dw),
        K.Let(xv, ctx.load(x, ((n * c_ + g * icg + ic) * h_) * w_ + clamped)),
        K.Store(col, col_base + row * nr + jj, K.select(inside, xv, K.const(0.0, x.dtype))),
    ], "vector")
    body.append(K.For(ic, K.const(0), K.const(icg), [
        K.For(kh, K.const(0), K.const(kh_), [K.For(kw, K.const(0), K.const(kw_), [gather])])]))

    ncols = names.var("ncols")
    body.append(K.Let(ncols, K.minimum(nr, positions - p0)))
    w_group = g * (ocg * depth)
    out_shape = [n_, oc_, positions]
    spans = [(0, 1), (1, 2), (2, 4)]
    full_shape = node.output.shape

    def shape_of(v):
        return merged_shape(v.shape, full_shape, spans)

    def panel(oc0: K.Expr, rows: int) -> list[K.Stmt]:
        """Microkernel for output channels [oc0, oc0 + rows) of group g, then write-out."""
        a_base = w_group + oc0 * depth

        def a_at(i: int, k: K.Expr) -> K.Expr:
            return K.Load(wbuf, a_base + k * rows + i)

        def b_at(k: K.Expr, v: int) -> K.Expr:
            return K.VecLoad(col, col_base + k * nr + v * tile.lanes, tile.lanes)

        stmts = microkernel(names, tile, rows, depth, a_at, b_at, acc)
        i, jc = names.var("i"), names.var("jc")
        oc = g * ocg + oc0 + i
        value: K.Expr = K.Load(acc, i * nr + jc)
        if bias is not None:
            value = value + ctx.load(bias, oc)
        lets, value = epilogue(ctx, group.nodes[1:], node.output, value, out_shape,
                               [n, oc, p0 + jc], shape_of)
        index = (n * oc_ + oc) * positions + p0 + jc
        stmts.append(K.For(i, K.const(0), K.const(rows), [
            K.For(jc, K.const(0), ncols, lets + [K.Store(out, index, value)], "vector")]))
        return stmts

    full = ocg // tile.mr
    if full:
        mp = names.var("mp")
        body.append(K.For(mp, K.const(0), K.const(full), panel(mp * tile.mr, tile.mr)))
    if ocg % tile.mr:
        body += panel(K.const(full * tile.mr), ocg % tile.mr)
    return [K.For(t, K.const(0), K.const(tasks), body, "parallel")]
