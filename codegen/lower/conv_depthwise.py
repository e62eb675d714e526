"""Depthwise conv2d (group == channels, one filter per channel) with vector accumulators.

A task is one (image, channel). It copies the channel's zero-padded input into its slice of
the arena scratch, split by column phase when strided (phase ph holds padded columns
ph, ph + s, ph + 2s, ...), so that for every tap the inputs of nr consecutive outputs are
nr consecutive floats. Then per output row and block of nr columns:

    acc_v = 0
    acc_v += splat(w[c, kh, kw]) * band[phase(kw)][oh*s + kh*dh][ow0 + offset(kw) + v*lanes]
                                                  (straight-line over the KH*KW taps)

and the tile goes out through bias and the fused epilogue.
"""

from __future__ import annotations

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup
from .. import kernel_ir as K
from .common import LowerContext, epilogue, group_output
from .gemm import Tile, merged_shape, tile_for, vec_var

#: taps unrolled into straight-line code at most (7x7)
_MAX_TAPS = 49


def depthwise_tile(group: FusedGroup, vector_bits: int) -> Tile | None:
    """The tile for a depthwise conv group, or None (not depthwise, or no vectors)."""
    node = group.anchor
    tile = tile_for(vector_bits)
    if tile is None or node.op != "conv2d" or len(node.inputs[0].shape) != 4:
        return None
    x, w = node.inputs[0], node.inputs[1]
    channels, groups = x.shape[1], node.attrs["group"]
    if groups == 1 or groups != channels or w.shape[0] != channels or w.shape[1] != 1:
        return None
    if x.dtype is not DType.float32 or group.nodes[-1].output.dtype is not DType.float32:
        return None
    if w.shape[2] * w.shape[3] > _MAX_TAPS:
        return None
    out_shape = node.output.shape
    for member in group.nodes[1:]:
        for v in member.inputs:
            if merged_shape(v.shape, out_shape, [(0, 1), (1, 2), (2, 4)]) is None:
                return None
    return tile


def lower_conv_depthwise(ctx: LowerContext, group: FusedGroup, tile: Tile) -> list[K.Stmt]:
    """The kernel of one depthwise conv group."""
    node = group.anchor
    x, w = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    n_, c_, h_, w_ = x.shape
    _, _, kh_, kw_ = w.shape
    _, _, oh_, ow_ = node.output.shape
    sh, sw = node.attrs["strides"]
    dh, dw = node.attrs["dilations"]
    pt, pl, _, _ = node.attrs["pads"]
    nr, lanes = tile.nr, tile.lanes
    blocks = -(-ow_ // nr)
    max_off = ((kw_ - 1) * dw) // sw
    row_len = blocks * nr + max_off + 1               # every block's loads stay inside
    rows = (oh_ - 1) * sh + (kh_ - 1) * dh + 1        # padded rows the outputs read
    plane = sw * rows * row_len
    names = ctx.names
    out = ctx.buf(group_output(ctx, group))
    band = ctx.storage.scratch(names.var("band").name, DType.float32, n_ * c_ * plane)
    acc = K.Buffer(names.var("tile").name, DType.float32, nr, "local")
    for b in (band, acc):
        ctx.buffers[id(b)] = b

    t = names.var("task")
    n, c = t // c_, t % c_
    base = t * plane
    body: list[K.Stmt] = []

    # Padded, phase-split copy: band[ph][r][q] = x[n, c, r - pt, q*sw + ph - pl] or 0.
    r, q, ih = names.var("r"), names.var("q"), names.var("ih")
    # Rows are zeros | a (strided, for stride > 1) copy of one input row | zeros.
    zero = K.const(0.0, x.dtype)
    row_ok = K.all_of([K.binary(">=", ih, 0), K.binary("<", ih, h_)])
    copies: list[K.Stmt] = []
    blanks: list[K.Stmt] = []
    for phase in range(sw):
        at = base + (phase * rows + r) * row_len
        lo = min(row_len, max(0, -(-(pl - phase) // sw)))          # first q with iw >= 0
        hi = max(lo, min(row_len, (w_ - 1 + pl - phase) // sw + 1))  # past the last iw < W
        copies += [
            K.For(q, K.const(0), K.const(lo), [K.Store(band, at + q, zero)], "vector"),
            K.For(q, K.const(lo), K.const(hi), [
                K.Store(band, at + q, ctx.load(x, t * (h_ * w_) + ih * w_ + q * sw
                                               + (phase - pl)))], "vector"),
            K.For(q, K.const(hi), K.const(row_len), [K.Store(band, at + q, zero)], "vector")]
        blanks.append(K.For(q, K.const(0), K.const(row_len), [K.Store(band, at + q, zero)],
                            "vector"))
    body.append(K.For(r, K.const(0), K.const(rows), [
        K.Let(ih, r - pt), K.If(row_ok, copies, blanks)]))

    oh, blk = names.var("oh"), names.var("blk")
    ow0 = blk * nr
    accs = [vec_var(names, f"c{v}", lanes) for v in range(tile.nv)]
    step: list[K.Stmt] = [K.Let(a, K.Broadcast(K.const(0.0, DType.float32), lanes))
                          for a in accs]
    for kh in range(kh_):
        for kw in range(kw_):
            phase, offset = (kw * dw) % sw, (kw * dw) // sw
            wv = vec_var(names, "w", lanes)
            step.append(K.Let(wv, K.Broadcast(ctx.load(w, (c * kh_ + kh) * kw_ + kw), lanes)))
            row_at = base + (phase * rows + oh * sh + kh * dh) * row_len + ow0 + offset
            step += [K.Assign(a, K.fma(a, wv, K.VecLoad(band, row_at + v * lanes, lanes)))
                     for v, a in enumerate(accs)]
    step += [K.VecStore(acc, K.const(v * lanes), a, lanes) for v, a in enumerate(accs)]

    jc = names.var("jc")
    value: K.Expr = K.Load(acc, jc)
    if bias is not None:
        value = value + ctx.load(bias, c)
    p = oh * ow_ + ow0 + jc
    lets, value = epilogue(ctx, group.nodes[1:], node.output, value, [n_, c_, oh_ * ow_],
                           [n, c, p],
                           lambda v: merged_shape(v.shape, node.output.shape,
                                                  [(0, 1), (1, 2), (2, 4)]))
    step.append(K.For(jc, K.const(0), K.minimum(nr, ow_ - ow0),
                      lets + [K.Store(out, t * (oh_ * ow_) + p, value)], "vector"))
    body.append(K.For(oh, K.const(0), K.const(oh_), [
        K.For(blk, K.const(0), K.const(blocks), step)]))
    return [K.For(t, K.const(0), K.const(n_ * c_), body, "parallel")]
