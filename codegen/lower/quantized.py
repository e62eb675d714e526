"""qmatmul and qconv2d as portable loops: exact int32 accumulation into a task's local row,
then the requantize / dequantize epilogue on the way to the output.

Every target runs these (the compiler vectorizes the contiguous inner loops); the VNNI
microkernel (int8_gemm.py) replaces them where the CPU has it.

    task = one output row (qmatmul) or one (image, output channel) (qconv2d)
      acc[:] = 0
      for k: av = a[.., k] - a_zero;  acc[j] += av * (b[k, j] - b_zero[j])
      out[j] = finish(acc[j], column j)        (compiler/ops/quantized.py)
"""

from __future__ import annotations

import math

import numpy as np

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup, Node
from ...compiler.ops.quantized import run_time_inputs
from .. import kernel_ir as K
from ..schedules import NoSchedule
from .common import LowerContext, group_output
from .conv_geometry import conv_geometry

I32 = DType.int32
F32 = DType.float32


def a_zero_point(ctx: LowerContext, node: Node) -> K.Expr:
    """A's zero point as an int32 expression: the attribute, or the run-time input."""
    if node.attrs["a_zero_point"] is not None:
        return K.const(node.attrs["a_zero_point"], I32)
    return K.cast(ctx.load(node.inputs[len(node.inputs) - run_time_inputs(node.attrs)],
                           K.const(0)), I32)


def finish(ctx: LowerContext, node: Node, acc: K.Expr, column: K.Expr) -> K.Expr:
    """The value node's epilogue stores for int32 accumulator `acc` of output column
    `column`: acc itself (out int32), saturate(round(float(acc + bias) * scale) + y_zero)
    (int8/uint8, rounding half to even: C's nearbyint in the default rounding mode), or
    float(acc) * scale + bias (float32; float(acc + bias) * scale for an int32 bias). A
    run-time scale of A multiplies the column's scale first; `relu` bounds the result below
    by y_zero_point (8-bit) or 0 (float32)."""
    out = node.output.dtype
    if out is I32:
        return acc
    bias, scale = (ctx.load(v, column) for v in node.inputs[3:5])
    if run_time_inputs(node.attrs) == 2:
        scale = ctx.load(node.inputs[-1], K.const(0)) * scale
    relu = node.attrs.get("relu", False)
    if out is F32:
        if node.inputs[3].dtype is I32:
            y = K.cast(acc + bias, F32) * scale
        else:
            y = K.cast(acc, F32) * scale + bias
        return K.maximum(y, K.const(0.0, F32)) if relu else y
    value = K.call("round", K.cast(acc + bias, F32) * scale)
    info = np.iinfo(out.numpy)
    y_zero = node.attrs["y_zero_point"]
    value = value + K.const(y_zero, F32)
    low = max(info.min, y_zero) if relu else info.min
    value = K.minimum(K.maximum(value, K.const(low, F32)), K.const(info.max, F32))
    return K.cast(value, out)


def _widened(ctx: LowerContext, load: K.Expr, zero: K.Expr) -> K.Expr:
    return K.cast(load, I32) - zero


def _local(ctx: LowerContext, hint: str, numel: int) -> K.Buffer:
    buf = K.Buffer(ctx.names.var(hint).name, I32, numel, "local")
    ctx.buffers[id(buf)] = buf
    return buf


def lower_qmatmul_loops(ctx: LowerContext, group: FusedGroup, schedule: NoSchedule
                        ) -> list[K.Stmt]:
    """Any qmatmul: one task per output row, k outermost so the inner loop is contiguous."""
    node = group.anchor
    a, b, b_zero = node.inputs[:3]
    k_, n_ = b.shape
    rows = math.prod(a.shape[:-1])
    out = ctx.buf(group_output(ctx, group))
    names = ctx.names
    row, j, k = names.var("row"), names.var("j"), names.var("k")
    acc = _local(ctx, "acc", n_)
    av = names.var("av", I32)
    a_zero = names.var("a_zero", I32)
    body: list[K.Stmt] = [
        K.Let(a_zero, a_zero_point(ctx, node)),
        K.For(j, K.const(0), K.const(n_), [K.Store(acc, j, K.const(0, I32))], "vector"),
        K.For(k, K.const(0), K.const(k_), [
            K.Let(av, _widened(ctx, ctx.load(a, row * k_ + k), a_zero)),
            K.For(j, K.const(0), K.const(n_), [
                K.Store(acc, j, K.Load(acc, j) + av * _widened(
                    ctx, ctx.load(b, k * n_ + j), ctx.load(b_zero, j)))], "vector")]),
        K.For(j, K.const(0), K.const(n_), [
            K.Store(out, row * n_ + j, finish(ctx, node, K.Load(acc, j), j))], "vector"),
    ]
    return [K.For(row, K.const(0), K.const(rows), body, "parallel")]


def lower_qconv_direct(ctx: LowerContext, group: FusedGroup, schedule: NoSchedule
                       ) -> list[K.Stmt]:
    """Any qconv2d: one task per (image, output channel), taps accumulated row by row in
    int32; padding is skipped (it reads the zero point, which adds nothing)."""
    node = group.anchor
    (x, w, _, (n_, c_, h_, w_), (oc_, icg, kh_, kw_), (oh_, ow_), (sh, sw), (dh, dw),
     (pt, pl, _, _), groups) = conv_geometry(node)
    w_zero = node.inputs[2]
    ocg = oc_ // groups
    out = ctx.buf(group_output(ctx, group))
    names = ctx.names
    t = names.var("task")
    n, oc = t // oc_, t % oc_
    plane = oh_ * ow_
    acc = _local(ctx, "acc", plane)
    p = names.var("p")
    ic, kh, kw, oh, ow = (names.var(v) for v in ("ic", "kh", "kw", "oh", "ow"))
    wv = names.var("wv", I32)
    ow_lo, ow_hi, ih = names.var("ow_lo"), names.var("ow_hi"), names.var("ih")
    a_zero = K.const(node.attrs["a_zero_point"], I32)
    channel = ic if groups == 1 else (oc // ocg) * icg + ic
    x_row = ((n * c_ + channel) * h_ + ih) * w_
    inner = K.For(ow, ow_lo, ow_hi, [
        K.Store(acc, oh * ow_ + ow, K.Load(acc, oh * ow_ + ow) + wv * _widened(
            ctx, ctx.load(x, x_row + ow * sw + (kw * dw - pl)), a_zero))], "vector")
    row_loop = K.For(oh, K.const(0), K.const(oh_), [
        K.Let(ih, oh * sh + (kh * dh - pt)),
        K.If(K.all_of([K.binary(">=", ih, 0), K.binary("<", ih, h_)]), [inner])])
    tap = [
        K.Let(wv, _widened(ctx, ctx.load(w, ((oc * icg + ic) * kh_ + kh) * kw_ + kw),
                           ctx.load(w_zero, oc))),
        K.Let(ow_lo, K.maximum(0, (pl - kw * dw + (sw - 1)) // sw)),
        K.Let(ow_hi, K.minimum(ow_, (w_ - 1 + pl - kw * dw + sw) // sw)),
        row_loop]
    body: list[K.Stmt] = [
        K.For(p, K.const(0), K.const(plane), [K.Store(acc, p, K.const(0, I32))], "vector"),
        K.For(ic, K.const(0), K.const(icg), [
            K.For(kh, K.const(0), K.const(kh_), [K.For(kw, K.const(0), K.const(kw_), tap)])]),
        K.For(p, K.const(0), K.const(plane), [
            K.Store(out, t * plane + p, finish(ctx, node, K.Load(acc, p), oc))], "vector")]
    return [K.For(t, K.const(0), K.const(n_ * oc_), body, "parallel")]
