"""Max and average pooling, three loop builders (which runs a pool is the kernel registry's
choice, codegen/kernels/pool.py): NCHW, one task per (n, c) plane with a window loop per
output element; NHWC, one task per output row, either the taps unrolled on vectors of
channels or the window loop outside a contiguous loop over channels."""

from __future__ import annotations

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup
from .. import kernel_ir as K
from .common import LowerContext, epilogue, group_output, steps_of
from .gemm import merged_shape
from .gemm_epilogue import finish_vector


#: the most window taps the NHWC vector kernel unrolls
MAX_UNROLLED_TAPS = 64


def _window(node):
    """A pool's kernel, strides, dilations, pads and count_include_pad."""
    a = node.attrs
    return (a["kernel"], a["strides"], a.get("dilations", (1, 1)), a["pads"],
            a.get("count_include_pad", False))


def is_nhwc(group: FusedGroup) -> bool:
    return group.anchor.attrs.get("layout") == "NHWC"


def nhwc_vector_rejects(group: FusedGroup, lanes: int) -> str | None:
    """Why the NHWC vector kernel cannot run a pool (None: it can)."""
    node = group.anchor
    (kh, kw), *_ = _window(node)
    if not is_nhwc(group):
        return "the pool is not in NHWC"
    if node.inputs[0].dtype is not DType.float32:
        return f"{node.inputs[0].dtype.name} input (float32 only)"
    if node.inputs[0].shape[3] < lanes:
        return f"{node.inputs[0].shape[3]} channels, fewer than one vector of {lanes}"
    if kh * kw > MAX_UNROLLED_TAPS:
        return f"a {kh}x{kw} window: more than {MAX_UNROLLED_TAPS} taps to unroll"
    return None


def lower_pool_nchw(ctx: LowerContext, group: FusedGroup) -> list[K.Stmt]:
    """One task per (n, c) plane, a window loop per output element."""
    node = group.anchor
    is_max = node.op == "max_pool2d"
    x = node.inputs[0]
    n_, c_, h_, w_ = x.shape
    _, _, oh_, ow_ = node.output.shape
    (kh_, kw_), (sh, sw), (dh, dw), (pt, pl, pb, pr), include_pad = _window(node)
    out_value = group_output(ctx, group)
    out = ctx.buf(out_value)
    names = ctx.names
    dtype = x.dtype

    t, oh, ow, kh, kw = (names.var(v) for v in ("plane", "oh", "ow", "kh", "kw"))
    acc = names.var("acc", dtype)
    count = names.var("count")
    ih, iw = names.var("ih"), names.var("iw")
    in_bounds = K.all_of([K.binary(">=", ih, 0), K.binary("<", ih, h_),
                          K.binary(">=", iw, 0), K.binary("<", iw, w_)])
    value = ctx.load(x, (t * h_ + ih) * w_ + iw)
    if is_max:
        update = [K.If(in_bounds, [K.Assign(acc, K.select(K.binary(">", value, acc), value,
                                                          acc))])]
    else:
        update = [K.If(in_bounds, [K.Assign(acc, acc + value)])]
        counted = in_bounds
        if include_pad:
            counted = K.all_of([K.binary("<", ih, h_ + pb), K.binary("<", iw, w_ + pr)])
        update.append(K.If(counted, [K.Assign(count, count + 1)]))
    window = K.For(kh, K.const(0), K.const(kh_), [
        K.Let(ih, oh * sh + (kh * dh - pt)),
        K.For(kw, K.const(0), K.const(kw_), [K.Let(iw, ow * sw + (kw * dw - pl))] + update),
    ])
    init = K.lowest(dtype) if is_max else K.const(0, dtype)
    result: K.Expr = acc if is_max else acc / K.cast(K.maximum(count, 1), dtype)
    lets, result = epilogue(ctx, group.nodes[1:], node.output, result, out_value.shape,
                            [t // c_, t % c_, oh, ow])
    stmts = [K.Let(acc, init)] + ([] if is_max else [K.Let(count, K.const(0))]) + [
        window] + lets + [K.Store(out, (t * oh_ + oh) * ow_ + ow, result)]
    row = K.For(oh, K.const(0), K.const(oh_), [K.For(ow, K.const(0), K.const(ow_), stmts)])
    return [K.For(t, K.const(0), K.const(n_ * c_), [row], "parallel")]


def lower_pool_nhwc_vector(ctx: LowerContext, group: FusedGroup) -> list[K.Stmt]:
    """One task per output row; per output pixel and vector of channels, the window's
    in-bounds taps combined in a register (the taps unrolled), then the mean and the
    epilogue. The last vector overlaps its neighbour when C is not a multiple of the lanes
    (channels are independent: the overlap writes the same values twice); fewer channels
    than one vector go through the loop over channels."""
    node = group.anchor
    is_max = node.op == "max_pool2d"
    x = node.inputs[0]
    n_, h_, w_, c_ = x.shape
    _, oh_, ow_, _ = node.output.shape
    (kh_, kw_), (sh, sw), (dh, dw), (pt, pl, pb, pr), include_pad = _window(node)
    out_value = group_output(ctx, group)
    out = ctx.buf(out_value)
    names = ctx.names
    dtype = x.dtype
    lanes = ctx.storage.lanes

    t, ow, cv = names.var("row"), names.var("ow"), names.var("cv")
    n, oh = t // oh_, t % oh_
    c = names.var("c")
    acc = K.VecVar(names.var("acc").name, lanes)
    count = names.var("count")
    xbuf = ctx.buf(x)
    merge = "max" if is_max else "+"
    taps: list[K.Stmt] = []
    counting: list[K.Stmt] = []
    for kh in range(kh_):
        ih = oh * sh + (kh * dh - pt)
        for kw in range(kw_):
            iw = ow * sw + (kw * dw - pl)
            inside = K.all_of([K.binary(">=", ih, 0), K.binary("<", ih, h_),
                               K.binary(">=", iw, 0), K.binary("<", iw, w_)])
            load = K.VecLoad(xbuf, ((n * h_ + ih) * w_ + iw) * c_ + c, lanes)
            combined = K.Select(K.Binary(">", load, acc, DType.bool), load, acc, dtype) \
                if merge == "max" else K.Binary("+", acc, load, dtype)
            taps.append(K.If(inside, [K.Assign(acc, combined)]))
            counted = K.all_of([K.binary("<", ih, h_ + pb), K.binary("<", iw, w_ + pr)]) \
                if include_pad else inside
            counting.append(K.If(counted, [K.Assign(count, count + 1)]))
    init = K.Broadcast(K.lowest(dtype) if is_max else K.const(0.0, dtype), lanes)
    value: K.Expr = acc
    if not is_max:
        value = K.Binary("/", acc, K.Broadcast(K.cast(K.maximum(count, 1), dtype), lanes),
                         dtype)
    pixel = t * ow_ + ow
    spill = K.Buffer(names.var("lane").name, dtype, lanes, "local")
    steps = steps_of(group.nodes[1:], node.output)
    store = finish_vector(ctx, steps, out, value, lanes, pixel * c_ + c,
                          ([n_ * oh_ * ow_, c_], [pixel, c]),
                          lambda v: merged_shape(v.shape, out_value.shape, [(0, 3), (3, 4)]),
                          lambda j: [n, oh, ow, c + j], out_value.shape, spill)
    per_vector = [K.Let(c, K.minimum(cv * lanes, c_ - lanes)), K.Let(acc, init)] + taps + store
    pixel_body: list[K.Stmt] = [] if is_max else [K.Let(count, K.const(0))] + counting
    pixel_body.append(K.For(cv, K.const(0), K.const(-(-c_ // lanes)), per_vector))
    return [K.For(t, K.const(0), K.const(n_ * oh_),
                  [K.For(ow, K.const(0), K.const(ow_), pixel_body)], "parallel")]


def lower_pool_nhwc_loops(ctx: LowerContext, group: FusedGroup) -> list[K.Stmt]:
    """out[n, oh, ow, :] accumulates in place over the window's in-bounds taps, each a
    contiguous (vectorized) loop over channels; then the mean and the epilogue."""
    node = group.anchor
    is_max = node.op == "max_pool2d"
    x = node.inputs[0]
    n_, h_, w_, c_ = x.shape
    _, oh_, ow_, _ = node.output.shape
    (kh_, kw_), (sh, sw), (dh, dw), (pt, pl, pb, pr), include_pad = _window(node)
    out_value = group_output(ctx, group)
    out = ctx.buf(out_value)
    names = ctx.names
    dtype = x.dtype

    t, ow, kh, kw, c = (names.var(v) for v in ("row", "ow", "kh", "kw", "c"))
    count = names.var("count")
    ih, iw = names.var("ih"), names.var("iw")
    n, oh = t // oh_, t % oh_
    at = ((t * ow_) + ow) * c_
    src = ((n * h_ + ih) * w_ + iw) * c_
    init = K.lowest(dtype) if is_max else K.const(0, dtype)
    current = K.Load(out, at + c)
    value = ctx.load(x, src + c)
    merged = K.select(K.binary(">", value, current), value, current) if is_max \
        else current + value
    tap = [K.For(c, K.const(0), K.const(c_), [K.Store(out, at + c, merged)], "vector")]
    inside_w = K.all_of([K.binary(">=", iw, 0), K.binary("<", iw, w_)])
    inside_h = K.all_of([K.binary(">=", ih, 0), K.binary("<", ih, h_)])
    counted = K.all_of([K.binary("<", ih, h_ + pb), K.binary("<", iw, w_ + pr)]) \
        if include_pad else K.all_of([inside_h, inside_w])
    counting = [] if is_max else [K.If(counted, [K.Assign(count, count + 1)])]
    window = K.For(kh, K.const(0), K.const(kh_), [
        K.Let(ih, oh * sh + (kh * dh - pt)),
        K.For(kw, K.const(0), K.const(kw_), [
            K.Let(iw, ow * sw + (kw * dw - pl)),
            K.If(K.all_of([inside_h, inside_w]), tap)] + counting)])
    result: K.Expr = K.Load(out, at + c)
    if not is_max:
        result = result / K.cast(K.maximum(count, 1), dtype)
    lets, result = epilogue(ctx, group.nodes[1:], node.output, result, out_value.shape,
                            [n, oh, ow, c])
    stmts: list[K.Stmt] = [
        K.For(c, K.const(0), K.const(c_), [K.Store(out, at + c, init)], "vector")]
    stmts += ([] if is_max else [K.Let(count, K.const(0))]) + [window]
    if lets or not is_max or len(group.nodes) > 1:
        stmts.append(K.For(c, K.const(0), K.const(c_), lets + [K.Store(out, at + c, result)],
                           "vector"))
    return [K.For(t, K.const(0), K.const(n_ * oh_),
                  [K.For(ow, K.const(0), K.const(ow_), stmts)], "parallel")]
