"""conv2d and matmul: accumulate into the output row by row, then apply the fused epilogue.

Loop order keeps the innermost loop contiguous in the output (and, at stride 1, in the
input), so the C compiler vectorizes it. Packed, register-blocked microkernels replace
these loops where the target declares vectors for them (conv_gemm.py, matmul_gemm.py);
these loops are the portable fallback the kernel registry (codegen/kernels/) ends with.
"""

from __future__ import annotations

import math

from ...compiler.ir import FusedGroup
from .. import kernel_ir as K
from ..schedules import NoSchedule
from .common import LowerContext, epilogue, group_output, strides
from .conv_geometry import conv_geometry


def _apply_epilogue(ctx: LowerContext, group: FusedGroup, out_buf: K.Buffer, base: K.Expr,
                    row: int, outer_idx: list[K.Expr], inner_shape: list[int]) -> list[K.Stmt]:
    """out[base + p] = epilogue(out[base + p]) over one row of `row` elements whose position
    in the output is outer_idx + unravel(p, inner_shape)."""
    if len(group.nodes) == 1:
        return []
    out_shape = group_output(ctx, group).shape
    anchor = group.anchor.output
    p = ctx.names.var("p")
    inner_idx: list[K.Expr] = []
    for extent, stride in zip(inner_shape, strides(inner_shape)):
        inner_idx.append((p // stride) % extent if extent > 1 else K.const(0))
    lets, value = epilogue(ctx, group.nodes[1:], anchor, K.Load(out_buf, base + p), out_shape,
                           outer_idx + inner_idx)
    return [K.For(p, K.const(0), K.const(row), lets + [K.Store(out_buf, base + p, value)],
                  "vector")]


def lower_conv_direct(ctx: LowerContext, group: FusedGroup, schedule: NoSchedule
                      ) -> list[K.Stmt]:
    """Any conv2d: one task per (image, output channel), the taps accumulated row by row."""
    node = group.anchor
    (x, w, bias, (n_, c_, h_, w_), (oc_, icg, kh_, kw_), (oh_, ow_), (sh, sw), (dh, dw),
     (pt, pl, _, _), groups) = conv_geometry(node)
    ocg = oc_ // groups
    out = ctx.buf(group_output(ctx, group))
    names = ctx.names

    t = names.var("task")
    n = t // oc_
    oc = t % oc_
    base = t * (oh_ * ow_)
    p = names.var("p")
    init = ctx.load(bias, oc) if bias is not None else K.const(0.0, out.dtype)
    body: list[K.Stmt] = [K.For(p, K.const(0), K.const(oh_ * ow_),
                                [K.Store(out, base + p, init)], "vector")]

    ic, kh, kw, oh, ow = (names.var(v) for v in ("ic", "kh", "kw", "oh", "ow"))
    wv = names.var("wv", w.dtype)
    ow_lo = names.var("ow_lo")
    ow_hi = names.var("ow_hi")
    ih = names.var("ih")
    channel = ic if node.attrs["group"] == 1 else (oc // ocg) * icg + ic
    x_row = ((n * c_ + channel) * h_ + ih) * w_
    inner = K.For(ow, ow_lo, ow_hi, [
        K.Store(out, base + oh * ow_ + ow,
                K.Load(out, base + oh * ow_ + ow)
                + wv * ctx.load(x, x_row + ow * sw + (kw * dw - pl)))], "vector")
    row_loop = K.For(oh, K.const(0), K.const(oh_), [
        K.Let(ih, oh * sh + (kh * dh - pt)),
        K.If(K.all_of([K.binary(">=", ih, 0), K.binary("<", ih, h_)]), [inner]),
    ])
    tap = [
        K.Let(wv, ctx.load(w, ((oc * icg + ic) * kh_ + kh) * kw_ + kw)),
        K.Let(ow_lo, K.maximum(0, (pl - kw * dw + (sw - 1)) // sw)),
        K.Let(ow_hi, K.minimum(ow_, (w_ - 1 + pl - kw * dw + sw) // sw)),
        row_loop,
    ]
    body.append(K.For(ic, K.const(0), K.const(icg), [
        K.For(kh, K.const(0), K.const(kh_), [K.For(kw, K.const(0), K.const(kw_), tap)])]))
    body += _apply_epilogue(ctx, group, out, base, oh_ * ow_, [n, oc], [oh_, ow_])
    return [K.For(t, K.const(0), K.const(n_ * oc_), body, "parallel")]


def lower_matmul_loops(ctx: LowerContext, group: FusedGroup, schedule: NoSchedule
                       ) -> list[K.Stmt]:
    """Any matmul: one task per output row, k outermost so the inner loop is contiguous."""
    node = group.anchor
    a, b = node.inputs
    out_shape = node.output.shape
    m_, k_, n_ = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = out_shape[:-2]
    out = ctx.buf(group_output(ctx, group))
    names = ctx.names

    t = names.var("row")
    bi = t // m_
    m = t % m_
    batch_idx = [(bi // s) % d if d > 1 else K.const(0)
                 for d, s in zip(batch, strides(batch))]

    def operand_base(shape) -> K.Expr:
        lead = len(batch) - (len(shape) - 2)
        offset: K.Expr = K.const(0)
        for i, (d, s) in enumerate(zip(shape[:-2], strides(shape[:-2]))):
            if d > 1:
                offset = offset + batch_idx[lead + i] * s
        return offset * (shape[-2] * shape[-1])

    base = t * n_
    j, k = names.var("j"), names.var("k")
    av = names.var("av", a.dtype)
    body: list[K.Stmt] = [
        K.For(j, K.const(0), K.const(n_), [K.Store(out, base + j, K.const(0.0, out.dtype))],
              "vector"),
        K.For(k, K.const(0), K.const(k_), [
            K.Let(av, ctx.load(a, operand_base(a.shape) + m * k_ + k)),
            K.For(j, K.const(0), K.const(n_), [
                K.Store(out, base + j,
                        K.Load(out, base + j) + av * ctx.load(b, operand_base(b.shape)
                                                              + k * n_ + j))], "vector"),
        ]),
    ]
    body += _apply_epilogue(ctx, group, out, base, n_, batch_idx + [m], [n_])
    total = m_ * math.prod(batch)
    return [K.For(t, K.const(0), K.const(total), body, "parallel")]
