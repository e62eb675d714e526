"""Depthwise conv2d in NHWC: one vector of channels at a time, every tap a vector FMA.

With channels last, the KH*KW weights of a vector of channels are KH*KW vectors (packed at
compile time as [KH*KW][C]) held in registers, and an output pixel is a sum of vector
products with the input pixels of its window. A task is (image, output row, chunk of
channel vectors); per channel vector:

    w{kh}_{kw} = wp[(kh*KW + kw)*C + c ...]                  (registers)
    for ow in R-pixel blocks of the interior:                (every kw tap inside the row)
        acc{r} = 0;  for kh with ih in the image:  acc{r} += w{kh}_{kw} * x[ih, iw(r, kw), c ...]
        out[oh, ow + r, c ...] = epilogue(acc{r} + bias)     (straight-line over r and kw)
    the other pixels (left and right borders, the block remainder): the same per pixel,
    each tap checked against the image

so no padded copy of the input is made. Channels are covered by whole vectors, the last
one overlapping its neighbour when C is not a multiple of the lanes (a pixel's channels are
independent, so the overlap writes the same values twice).
"""

from __future__ import annotations

import numpy as np

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup, Node, Value
from .. import kernel_ir as K
from ..schedules import NhwcDepthwiseSchedule
from .common import LowerContext, group_output, steps_of
from .gemm import merged_shape, vec_var
from .gemm_epilogue import finish_vector


def pack_depthwise_weight(node: Node) -> np.ndarray:
    """W [C, 1, KH, KW] as [KH*KW][C]: a tap's weights for consecutive channels together."""
    w = node.inputs[1].data.astype(np.float32)
    c = w.shape[0]
    return np.ascontiguousarray(w.reshape(c, -1).T).reshape(-1)


def lower_conv_nhwc_depthwise(ctx: LowerContext, group: FusedGroup,
                              schedule: NhwcDepthwiseSchedule) -> list[K.Stmt]:
    """The kernel of one depthwise NHWC conv group (weights packed by pack_depthwise_weight)."""
    node = group.anchor
    x = node.inputs[0]
    n_, h_, w_, c_ = x.shape
    oh_ = node.output.shape[1]
    lanes = ctx.storage.lanes
    names = ctx.names
    xbuf = ctx.buf(x)

    vectors = -(-c_ // lanes)
    rows = n_ * oh_
    chunks = max(1, min(vectors, -(-schedule.min_tasks // rows)))
    per_chunk = -(-vectors // chunks)
    chunks = -(-vectors // per_chunk)

    t = names.var("task")
    r_, chunk = t // chunks, t % chunks
    n, oh = names.var("n"), names.var("oh")
    cv, c = names.var("cv"), names.var("c")
    body: list[K.Stmt] = [K.Let(n, r_ // oh_), K.Let(oh, r_ % oh_)]

    def x_at(ih: K.Expr, iw: K.Expr) -> K.Expr:
        return K.VecLoad(xbuf, ((n * h_ + ih) * w_ + iw) * c_ + c, lanes)

    per_vector = [K.Let(c, K.minimum(cv * lanes, c_ - lanes))]
    per_vector += depthwise_row(ctx, node, group.nodes[1:], group_output(ctx, group), n, oh, c,
                                x_at)
    body.append(K.For(cv, chunk * per_chunk, K.minimum(vectors, chunk * per_chunk + per_chunk),
                      per_vector))
    return [K.For(t, K.const(0), K.const(rows * chunks), body, "parallel")]


def depthwise_row(ctx: LowerContext, node: Node, chain: list[Node], out_value: Value,
                  n: K.Expr, oh: K.Expr, c: K.Expr, x_at) -> list[K.Stmt]:
    """Output row (n, oh) of depthwise conv `node`, for the vector of channels from c (the
    caller binds it), `chain` (the epilogue) applied on the way out to `out_value`.
    x_at(ih, iw) is the input vector at row ih, column iw of image n (the caller's input,
    or the band a fused kernel made)."""
    w = node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    n_, h_, w_, c_ = node.inputs[0].shape
    _, oh_, ow_, _ = node.output.shape
    _, _, kh_, kw_ = w.shape
    sh, sw = node.attrs["strides"]
    dh, dw = node.attrs["dilations"]
    pt, pl, _, _ = node.attrs["pads"]
    lanes = ctx.storage.lanes
    block = 8 if lanes == 16 else 4
    names = ctx.names
    out, wbuf = ctx.buf(out_value), ctx.buf(w)
    ldo = ctx.storage.row_stride(out_value)   # C, or more when writing into a concat
    merged_out = [n_ * oh_ * ow_, c_]
    steps = steps_of(chain, node.output, bias)

    def shape_of(v):
        return merged_shape(v.shape, out_value.shape, [(0, 3), (3, 4)])

    wv = {}
    stmts: list[K.Stmt] = []
    for kh in range(kh_):
        for kw in range(kw_):
            wv[kh, kw] = vec_var(names, f"w{kh}_{kw}", lanes)
            stmts.append(K.Let(wv[kh, kw], K.VecLoad(wbuf, c + (kh * kw_ + kw) * c_, lanes)))
    ih0 = oh * sh - pt
    row_ok = {kh: K.all_of([K.binary(">=", ih0 + kh * dh, 0),
                            K.binary("<", ih0 + kh * dh, h_)]) for kh in range(kh_)}
    spill = K.Buffer(names.var("lane").name, DType.float32, lanes, "local")

    def store(ow: K.Expr, acc: K.Expr) -> list[K.Stmt]:
        pixel = (n * oh_ + oh) * ow_ + ow
        return finish_vector(ctx, steps, out, acc, lanes, pixel * ldo + c,
                             (merged_out, [pixel, c]), shape_of,
                             lambda j: [n, oh, ow, c + j], out_value.shape, spill)

    zero = K.Broadcast(K.const(0.0, DType.float32), lanes)

    # Interior: columns whose every kw tap lies inside the row, `block` at a time.
    ow_lo = min(ow_, max(0, -(-pl // sw)))
    ow_hi = max(ow_lo, min(ow_, (w_ - 1 + pl - (kw_ - 1) * dw) // sw + 1))
    full = (ow_hi - ow_lo) // block
    if full:
        ob = names.var("ob")
        ow0 = ow_lo + ob * block
        accs = [vec_var(names, f"acc{r}", lanes) for r in range(block)]
        tile: list[K.Stmt] = [K.Let(a, zero) for a in accs]
        for kh in range(kh_):
            taps: list[K.Stmt] = []
            for kw in range(kw_):
                for r, a in enumerate(accs):
                    iw = (ow0 + r) * sw + (kw * dw - pl)
                    taps.append(K.Assign(a, K.fma(a, wv[kh, kw], x_at(ih0 + kh * dh, iw))))
            tile.append(K.If(row_ok[kh], taps))
        for r, a in enumerate(accs):
            tile += store(ow0 + r, a)
        stmts.append(K.For(ob, K.const(0), K.const(full), tile))

    # Every other column, one pixel at a time with each tap checked.
    ow = names.var("ow")
    acc = vec_var(names, "acc", lanes)
    pixel: list[K.Stmt] = [K.Let(acc, zero)]
    for kh in range(kh_):
        taps = []
        for kw in range(kw_):
            iw = ow * sw + (kw * dw - pl)
            inside = K.all_of([K.binary(">=", iw, 0), K.binary("<", iw, w_)])
            taps.append(K.If(inside, [K.Assign(acc, K.fma(acc, wv[kh, kw],
                                                          x_at(ih0 + kh * dh, iw)))]))
        pixel.append(K.If(row_ok[kh], taps))
    pixel += store(ow, acc)
    for lo, hi in ((0, ow_lo), (ow_lo + full * block, ow_)):
        if lo < hi:
            stmts.append(K.For(ow, K.const(lo), K.const(hi), pixel))
    return stmts
