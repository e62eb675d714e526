"""Depthwise conv2d (group == channels, one filter per channel) with vector accumulators.

A task is a run of (image, channel) planes sharing one slot of the arena scratch (a small
cache footprint). Per channel it copies the zero-padded input plane into the slot, split by
column phase when strided (phase ph holds padded columns
ph, ph + s, ph + 2s, ...), so that for every tap the inputs of nr consecutive outputs are
nr consecutive floats. The KH*KW weights are splatted once per channel (registers when they
fit); then per group of R output rows and block of one vector of columns, straight-line:

    acc_r = 0                                     (r < R)
    x = band[phase(kw)][oh0*s + ir][ow0 + offset(kw) ...]   (each band row ir and kw once)
    acc_r += w[kh, kw] * x        for every r whose window has row ir as tap kh

so a band row loaded once feeds up to KH output rows. The R rows go to a local tile as wide
as the output row, and bias and the fused epilogue are applied a whole row at a time (a
contiguous loop the C compiler vectorizes).
"""

from __future__ import annotations

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup
from .. import kernel_ir as K
from .common import LowerContext, epilogue, group_output
from .conv_geometry import conv_geometry, epilogue_fits
from ..schedules import DepthwiseSchedule
from .gemm import merged_shape, vec_var

#: taps unrolled into straight-line code at most (7x7)
MAX_TAPS = 49


def depthwise_rejects(group: FusedGroup) -> str | None:
    """Why the NCHW depthwise kernel cannot run this conv group (None: it can)."""
    node = group.anchor
    if len(node.inputs[0].shape) != 4:
        return "not a 2-D conv"
    x, w = node.inputs[0], node.inputs[1]
    channels, groups = x.shape[1], node.attrs["group"]
    if groups == 1 or groups != channels or w.shape[0] != channels or w.shape[1] != 1:
        return "not a depthwise conv (one input and one output channel per group)"
    if x.dtype is not DType.float32 or group.nodes[-1].output.dtype is not DType.float32:
        return "the kernel is float32"
    if w.shape[2] * w.shape[3] > MAX_TAPS:
        return f"a {w.shape[2]}x{w.shape[3]} window has more than {MAX_TAPS} taps"
    if not epilogue_fits(group):
        return "an epilogue operand does not fold onto the output as (N, C, H*W)"
    return None


def _per_task(channels: int, most: int) -> int:
    """Channels per task: `most` or the largest smaller power of 2 dividing C."""
    return next(d for d in (most, most // 2, most // 4, most // 8, 1)
                if d >= 1 and channels % d == 0)


def _fill(buf: K.Buffer, at: K.Expr, lo: int, hi: int, lanes: int) -> list[K.Stmt]:
    """buf[at + lo .. at + hi) = 0 as whole vectors (the last one overlapping) when the span
    holds one, else element by element (short fixed loops are otherwise unrolled scalar)."""
    zero = K.const(0.0, DType.float32)
    if hi - lo < lanes:
        return [K.Store(buf, at + q, zero) for q in range(lo, hi)]
    starts = list(range(lo, hi - lanes + 1, lanes))
    if starts[-1] + lanes < hi:
        starts.append(hi - lanes)
    return [K.VecStore(buf, at + q, K.Broadcast(zero, lanes), lanes) for q in starts]


def _copy(dst: K.Buffer, at: K.Expr, src: K.Buffer, src_at: K.Expr, lo: int, hi: int,
          lanes: int) -> list[K.Stmt]:
    """dst[at + q] = src[src_at + q] for q in [lo, hi), as whole vectors like _fill."""
    if hi - lo < lanes:
        return [K.Store(dst, at + q, K.Load(src, src_at + q)) for q in range(lo, hi)]
    starts = list(range(lo, hi - lanes + 1, lanes))
    if starts[-1] + lanes < hi:
        starts.append(hi - lanes)
    return [K.VecStore(dst, at + q, K.VecLoad(src, src_at + q, lanes), lanes) for q in starts]


def lower_conv_depthwise(ctx: LowerContext, group: FusedGroup, schedule: DepthwiseSchedule
                         ) -> list[K.Stmt]:
    """The kernel of one depthwise conv group, `schedule.rows` output rows at a time."""
    node = group.anchor
    (x, w, bias, (n_, c_, h_, w_), (_, _, kh_, kw_), (oh_, ow_), (sh, sw), (dh, dw),
     (pt, pl, _, _), _) = conv_geometry(node)
    lanes = ctx.storage.lanes
    nr = lanes                                        # one vector per row and block
    rows_out = min(schedule.rows, oh_)
    oh_groups = -(-oh_ // rows_out)
    blocks = -(-ow_ // nr)
    max_off = ((kw_ - 1) * dw) // sw
    row_len = blocks * nr + max_off + 1               # every block's loads stay inside
    rows = (oh_groups * rows_out - 1) * sh + (kh_ - 1) * dh + 1   # padded rows read
    plane = sw * rows * row_len
    names = ctx.names
    out = ctx.buf(group_output(ctx, group))
    band = ctx.storage.scratch(names.var("band").name, DType.float32,
                               n_ * c_ // _per_task(c_, schedule.channels_per_task) * plane)
    row_w = blocks * nr
    acc = K.Buffer(names.var("tile").name, DType.float32, rows_out * row_w, "local")
    for b in (band, acc):
        ctx.buffers[id(b)] = b

    # A task is a run of `per_task` channels that reuse one band slot (a small footprint).
    per_task = _per_task(c_, schedule.channels_per_task)
    task, ci = names.var("task"), names.var("ci")
    t = task * per_task + ci                         # = n * C + c
    n, c = t // c_, t % c_
    base = task * plane
    body: list[K.Stmt] = []

    # Padded, phase-split copy: band[ph][r][q] = x[n, c, r - pt, q*sw + ph - pl] or 0.
    r, q, ih = names.var("r"), names.var("q"), names.var("ih")
    # Rows are zeros | a (strided, for stride > 1) copy of one input row | zeros.
    row_ok = K.all_of([K.binary(">=", ih, 0), K.binary("<", ih, h_)])
    copies: list[K.Stmt] = []
    blanks: list[K.Stmt] = []
    for phase in range(sw):
        at = base + (phase * rows + r) * row_len
        lo = min(row_len, max(0, -(-(pl - phase) // sw)))          # first q with iw >= 0
        hi = max(lo, min(row_len, (w_ - 1 + pl - phase) // sw + 1))  # past the last iw < W
        src = t * (h_ * w_) + ih * w_ + (phase - pl)
        copies += _fill(band, at, 0, lo, lanes)
        if sw == 1:
            copies += _copy(band, at, ctx.buf(x), src, lo, hi, lanes)
        else:
            copies.append(K.For(q, K.const(lo), K.const(hi), [
                K.Store(band, at + q, ctx.load(x, src + q * sw))], "vector"))
        copies += _fill(band, at, hi, row_len, lanes)
        blanks += _fill(band, at, 0, row_len, lanes)
    body.append(K.For(r, K.const(0), K.const(rows), [
        K.Let(ih, r - pt), K.If(row_ok, copies, blanks)]))

    # Weights as splatted vectors, once per task (registers when they fit).
    taps = [(kh, kw) for kh in range(kh_) for kw in range(kw_)]
    wvec = {}
    for kh, kw in taps:
        wv = vec_var(names, f"w{kh}_{kw}", lanes)
        body.append(K.Let(wv, K.Broadcast(ctx.load(w, (c * kh_ + kh) * kw_ + kw), lanes)))
        wvec[kh, kw] = wv

    # rows_out output rows x one vector: each band row is loaded once per kw and feeds
    # every output row whose window covers it.
    og, blk = names.var("og"), names.var("blk")
    oh0 = og * rows_out
    ow0 = blk * nr
    accs = [vec_var(names, f"c{r}", lanes) for r in range(rows_out)]
    step: list[K.Stmt] = [K.Let(a, K.Broadcast(K.const(0.0, DType.float32), lanes))
                          for a in accs]
    for ir in range((rows_out - 1) * sh + (kh_ - 1) * dh + 1):
        users = [(r, (ir - r * sh) // dh) for r in range(rows_out)
                 if ir - r * sh >= 0 and (ir - r * sh) % dh == 0 and (ir - r * sh) // dh < kh_]
        if not users:
            continue
        for kw in range(kw_):
            phase, offset = (kw * dw) % sw, (kw * dw) // sw
            xv = vec_var(names, "x", lanes)
            row_at = base + (phase * rows + oh0 * sh + ir) * row_len + ow0 + offset
            step.append(K.Let(xv, K.VecLoad(band, row_at, lanes)))
            step += [K.Assign(accs[r], K.fma(accs[r], wvec[kh, kw], xv)) for r, kh in users]
    step += [K.VecStore(acc, ow0 + r * row_w, a, lanes) for r, a in enumerate(accs)]

    # Bias and epilogue on the way out, a whole output row at a time (contiguous).
    write: list[K.Stmt] = []
    for r in range(rows_out):
        jc = names.var("jc")
        value: K.Expr = K.Load(acc, K.const(r * row_w) + jc)
        if bias is not None:
            value = value + ctx.load(bias, c)
        p = (oh0 + r) * ow_ + jc
        lets, value = epilogue(ctx, group.nodes[1:], node.output, value, [n_, c_, oh_ * ow_],
                               [n, c, p],
                               lambda v: merged_shape(v.shape, node.output.shape,
                                                      [(0, 1), (1, 2), (2, 4)]))
        loop = K.For(jc, K.const(0), K.const(ow_),
                     lets + [K.Store(out, t * (oh_ * ow_) + p, value)], "vector")
        ragged = oh_ % rows_out != 0 and r >= oh_ % rows_out
        write.append(K.If(K.binary("<", oh0 + r, oh_), [loop]) if ragged else loop)
    body.append(K.For(og, K.const(0), K.const(oh_groups), [
        K.For(blk, K.const(0), K.const(blocks), step)] + write))
    return [K.For(task, K.const(0), K.const(n_ * c_ // per_task),
                  [K.For(ci, K.const(0), K.const(per_task), body)], "parallel")]
