"""A 1x1 conv and the depthwise conv that reads its result, in one kernel, band by band.

MobileNet's blocks widen the channels six times with a 1x1 conv, then run a depthwise conv
over the wide tensor; on large images (224x224x96 is 19 MB) that tensor leaves the caches
between the two kernels and comes back. Fused (passes/fuse.py groups the two where the
registry says this kernel runs them), a task makes, per band of R output rows of the
depthwise conv, the wide rows their windows read, into its slot of the scratch (which stays
in L2), and runs the depthwise rows from there:

    for band in the task's bands:
        e[the band's input rows] = act(x[those rows] @ W1 + b1)   (microkernel, epilogue in
                                                                   registers)
        out[the band's rows] = epilogue(depthwise(e))             (depthwise_row)

A band's input rows are those of its windows, shifted to lie inside the image (a fixed
count, so the GEMM's tiles are fixed); consecutive bands share (KH - stride) rows, which
are made twice. Only 1x1 stride-1 convs followed by relu or clip, feeding a depthwise conv
over a tensor too big for the caches, are fused.
"""

from __future__ import annotations

from ...compiler.ir import FusedGroup, Node
from .. import kernel_ir as K
from ..schedules import PointwiseDepthwiseSchedule
from .common import LowerContext, group_output, steps_of
from .conv_nhwc import geometry
from .conv_nhwc_depthwise import depthwise_row
from .gemm import Tile, merged_shape
from .gemm_micro import invoke, microkernel_function
from .tile_epilogue import tile_epilogue

#: the wide tensor must be at least this big to be worth fusing: a band's rows are made
#: (KH - stride) / R more than once, which smaller tensors, read back from L3, do not repay
#: (1x1 16->96 then 3x3/2 depthwise on Zen 5, 1 thread: 4.8 MB wide, fused 0.66 ms against
#: 0.56 ms apart; 19 MB, 2.2 against 4.1 ms)
MIN_WIDE_BYTES = 8 << 20
#: what may lie between the two convs
_BETWEEN = ("relu", "clip")


def pointwise_depthwise_rejects(pw: Node, between: list[Node], dw: Node, nr: int
                                ) -> str | None:
    """Why this kernel cannot run pw -> between -> dw (NHWC; pw run by the implicit GEMM
    with nr columns per panel, dw by the NHWC depthwise kernel) as one group."""
    if pw.inputs[1].shape[2:] != (1, 1) or tuple(pw.attrs["strides"]) != (1, 1) \
            or any(pw.attrs["pads"]):
        return "the first conv is not 1x1, stride 1, unpadded"
    if any(n.op not in _BETWEEN or len(n.inputs) != 1 for n in between):
        return f"only {' or '.join(_BETWEEN)} may lie between the convs"
    wide = (between[-1] if between else pw).output
    if dw.inputs[0] is not wide:
        return "the depthwise conv does not read the 1x1 conv's result"
    if wide.type.nbytes < MIN_WIDE_BYTES:
        return f"the wide tensor is smaller than {MIN_WIDE_BYTES >> 20} MiB: it stays in cache"
    if wide.shape[3] % nr:
        return f"{wide.shape[3]} wide channels are not a multiple of the tile's {nr} columns"
    return None


def _band(dw: Node, rows: int) -> int:
    """Input rows a band of `rows` depthwise output rows reads (at most the image's)."""
    h = dw.inputs[0].shape[1]
    sh, dh, kh = dw.attrs["strides"][0], dw.attrs["dilations"][0], dw.inputs[1].shape[2]
    return min(h, (rows - 1) * sh + (kh - 1) * dh + 1)


def lower_pointwise_depthwise(ctx: LowerContext, group: FusedGroup,
                              schedule: PointwiseDepthwiseSchedule) -> list[K.Stmt]:
    """The kernel of a group [pw conv, relu/clip..., depthwise conv, epilogue...]."""
    pw = group.anchor
    at = next(i for i, n in enumerate(group.nodes) if i and n.op == "conv2d")
    between, dw, after = group.nodes[1:at], group.nodes[at], group.nodes[at + 1:]
    g = geometry(pw)
    wide = dw.inputs[0]
    n_, h_, w_, cexp = wide.shape
    oh_ = dw.output.shape[1]
    sh, pt = dw.attrs["strides"][0], dw.attrs["pads"][0]
    tile = Tile(ctx.storage.lanes, schedule.mr, schedule.nv)
    lanes, mr, nv, nr = tile.lanes, tile.mr, tile.nv, tile.nr
    names = ctx.names

    rows = 1
    while rows < oh_ and _band(dw, rows + 1) * w_ * cexp * 4 <= schedule.slot_bytes:
        rows += 1
    band = _band(dw, rows)
    bands = n_ * -(-oh_ // rows)
    tasks = min(schedule.tasks, bands)
    per_task = -(-bands // tasks)
    tasks = -(-bands // per_task)
    slot = band * w_ * cexp
    scratch = ctx.storage.scratch(names.var("wide").name, wide.dtype, tasks * slot)
    ctx.buffers[id(scratch)] = scratch

    steps = steps_of(between, pw.output, pw.inputs[2] if len(pw.inputs) > 2 else None)
    ep = tile_epilogue(steps, [g.n * g.h * g.w, cexp],
                       lambda v: merged_shape(v.shape, wide.shape, [(0, 3), (3, 4)]), lanes) \
        if steps else None
    if steps and (ep is None or any(kind != "col" for _, kind in ep.operands)):
        raise ValueError("pointwise_depthwise_rejects admits only relu/clip between the convs")
    xbuf, wpw = ctx.buf(pw.inputs[0]), ctx.buf(pw.inputs[1])

    t, b = names.var("task"), names.var("b")
    n, oh0, lo, base = names.var("n"), names.var("oh0"), names.var("lo"), names.var("base")
    per_image = -(-oh_ // rows)
    body: list[K.Stmt] = [
        K.Let(n, b // per_image), K.Let(oh0, (b % per_image) * rows),
        K.Let(lo, K.maximum(0, K.minimum(oh0 * sh - pt, h_ - band))),
        K.Let(base, t * slot)]

    # The band's wide rows: one GEMM of band*W pixels, the epilogue in registers.
    pixels = band * w_
    pj, ti = names.var("pj"), names.var("ti")

    def micro(count: int, first: K.Expr) -> K.Invoke:
        fn = microkernel_function(lanes, count, nv, g.c, 1, nr, lanes, epilogue=ep)
        finish = (1, ep.arguments(K.const(0), pj * nr, cexp, ctx.buf)) if ep else None
        return invoke(fn, g.c, (xbuf, ((n * h_ + lo) * w_ + first) * g.c),
                      (wpw, pj * (g.c * nr)), (scratch, base + first * cexp + pj * nr), cexp,
                      finish=finish)

    sweep: list[K.Stmt] = [K.For(ti, K.const(0), K.const(pixels // mr), [micro(mr, ti * mr)])]
    if pixels % mr:
        sweep.append(micro(pixels % mr, K.const(pixels - pixels % mr)))
    body.append(K.For(pj, K.const(0), K.const(cexp // nr), sweep))

    # The band's depthwise rows, read from the slot.
    oh, cv, c = names.var("oh"), names.var("cv"), names.var("c")

    def x_at(ih: K.Expr, iw: K.Expr) -> K.Expr:
        return K.VecLoad(scratch, base + ((ih - lo) * w_ + iw) * cexp + c, lanes)

    per_vector = [K.Let(c, K.minimum(cv * lanes, cexp - lanes))]
    per_vector += depthwise_row(ctx, dw, after, group_output(ctx, group), n, oh, c, x_at)
    body.append(K.For(oh, oh0, K.minimum(oh_, oh0 + rows), [
        K.For(cv, K.const(0), K.const(-(-cexp // lanes)), per_vector)]))
    return [K.For(t, K.const(0), K.const(tasks), [
        K.For(b, t * per_task, K.minimum(bands, t * per_task + per_task), body)], "parallel")]
