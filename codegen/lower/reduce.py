"""Reductions, softmax and layer normalization: loops over the kept positions, an inner
loop (or three) over the reduced elements."""

from __future__ import annotations

import math

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup, Node
from .. import kernel_ir as K
from ..schedules import ReductionSchedule, RowsSchedule
from .common import LowerContext, epilogue, flat_index, group_output, strides
from .rows import Loader, lane_reduce

_INIT = {"reduce_sum": lambda t: K.const(0, t), "reduce_mean": lambda t: K.const(0, t),
         "reduce_prod": lambda t: K.const(1, t), "reduce_max": K.lowest,
         "reduce_min": K.highest}


def _combine(op: str, acc: K.Expr, value: K.Expr) -> K.Expr:
    if op in ("reduce_sum", "reduce_mean"):
        return acc + value
    if op == "reduce_prod":
        return acc * value
    if op == "reduce_max":
        return K.select(K.binary(">", value, acc), value, acc)
    return K.select(K.binary("<", value, acc), value, acc)


REDUCE_OPS = ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod")


def row_block(node: Node, min_inner: int) -> tuple[int, int] | None:
    """The reduced axes [first, last) when they are one block with at least `min_inner`
    kept elements after it: the reduction runs row by row."""
    x = node.inputs[0]
    reduced = sorted(set(node.attrs["axes"]))
    if reduced and reduced == list(range(reduced[0], reduced[-1] + 1)) \
            and math.prod(x.shape[reduced[-1] + 1:]) >= min_inner:
        return reduced[0], reduced[-1] + 1
    return None


def lower_reduce(ctx: LowerContext, group: FusedGroup, schedule: ReductionSchedule
                 ) -> list[K.Stmt]:
    """Row by row where the reduced axes are one block with at least `min_inner` kept
    elements after them (vector loops over those), else one output element at a time."""
    node = group.anchor
    x = node.inputs[0]
    axes = set(node.attrs["axes"])
    out_value = group_output(ctx, group)
    out = ctx.buf(out_value)
    kept = [a for a in range(len(x.shape)) if a not in axes]
    reduced = [a for a in range(len(x.shape)) if a in axes]
    block = row_block(node, schedule.min_inner)
    if block is not None:
        return _reduce_to_rows(ctx, group, *block, schedule.row_chunk)
    kept_shape = [x.shape[a] for a in kept]
    count = math.prod(x.shape[a] for a in reduced)
    x_strides = strides(x.shape)
    acc_dtype = DType.float32 if x.dtype is DType.float16 else x.dtype   # float16 sums in float32
    names = ctx.names

    def body(kept_idx: list[K.Expr]) -> list[K.Stmt]:
        acc = names.var("acc", acc_dtype)
        red_vars = [names.var(f"r{a}") for a in reduced]
        offset: K.Expr = K.const(0)
        for a, i in zip(kept, kept_idx):
            offset = offset + i * x_strides[a]
        for a, v in zip(reduced, red_vars):
            offset = offset + v * x_strides[a]
        inner: list[K.Stmt] = [K.Assign(acc, _combine(node.op, acc, ctx.load(x, offset)))]
        for a, v in reversed(list(zip(reduced, red_vars))):
            inner = [K.For(v, K.const(0), K.const(x.shape[a]), inner)]
        result: K.Expr = acc
        if node.op == "reduce_mean":
            result = acc / K.const(float(max(count, 1)), acc_dtype)
        out_idx = _out_index(node.attrs["keepdims"], x.shape, kept, kept_idx)
        lets, result = epilogue(ctx, group.nodes[1:], node.output, result, out_value.shape,
                                out_idx)
        return [K.Let(acc, _INIT[node.op](acc_dtype))] + inner + lets + [
            K.Store(out, flat_index(out_value.shape, out_idx), result)]

    return K.loop_nest(names, kept_shape or [1], [f"i{a}" for a in kept] or ["i"], body,
                       outer_kind="parallel")


def _reduce_to_rows(ctx: LowerContext, group: FusedGroup, first: int, last: int,
                    row_chunk: int) -> list[K.Stmt]:
    """A reduction over axes [first, last) with kept dims after them (NHWC global pooling:
    [N, H, W, C] over H and W): x as [outer, red, inner] rows, combined row by row into
    the output, each step a contiguous (vectorized) loop over `inner` elements."""
    node = group.anchor
    x = node.inputs[0]
    out_value = group_output(ctx, group)
    out = ctx.buf(out_value)
    outer, red = math.prod(x.shape[:first]), math.prod(x.shape[first:last])
    inner = math.prod(x.shape[last:])
    acc_dtype = DType.float32 if x.dtype is DType.float16 else x.dtype
    names = ctx.names
    chunks = -(-inner // row_chunk)
    t, r, j = names.var("task"), names.var("r"), names.var("j")
    o, j0 = t // chunks, (t % chunks) * row_chunk
    width = K.const(row_chunk) if inner % row_chunk == 0 else K.minimum(row_chunk, inner - j0)
    acc = K.Buffer(names.var("acc").name, acc_dtype, min(inner, row_chunk), "local")
    ctx.buffers[id(acc)] = acc
    value = ctx.load(x, (o * red + r) * inner + j0 + j)
    if acc_dtype is not x.dtype:
        value = K.cast(value, acc_dtype)
    result: K.Expr = K.Load(acc, j)
    if node.op == "reduce_mean":
        result = result / K.const(float(max(red, 1)), acc_dtype)
    flat = o * inner + j0 + j
    out_idx = [(flat // stride) % d if d > 1 else K.const(0)
               for d, stride in zip(out_value.shape, strides(out_value.shape))]
    lets, result = epilogue(ctx, group.nodes[1:], node.output, K.cast(result, x.dtype),
                            out_value.shape, out_idx)
    return [K.For(t, K.const(0), K.const(outer * chunks), [
        K.For(j, K.const(0), width, [K.Store(acc, j, _INIT[node.op](acc_dtype))], "vector"),
        K.For(r, K.const(0), K.const(red), [
            K.For(j, K.const(0), width,
                  [K.Store(acc, j, _combine(node.op, K.Load(acc, j), value))], "vector")]),
        K.For(j, K.const(0), width, lets + [K.Store(out, flat, result)], "vector"),
    ], "parallel")]


def _out_index(keepdims: bool, in_shape, kept, kept_idx) -> list[K.Expr]:
    if not keepdims:
        return list(kept_idx[:len(kept)])
    by_axis = dict(zip(kept, kept_idx))
    return [by_axis.get(a, K.const(0)) for a in range(len(in_shape))]


def _rows(shape, axis: int) -> tuple[int, int, int]:
    """(outer, length, inner) of a tensor viewed around `axis`."""
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def lower_softmax(ctx: LowerContext, group: FusedGroup, schedule: RowsSchedule
                  ) -> list[K.Stmt]:
    node = group.anchor
    x = node.inputs[0]
    out = ctx.buf(group_output(ctx, group))
    outer, length, inner = _rows(x.shape, node.attrs["axis"])
    if inner == 1 and x.dtype is DType.float32:
        return _contiguous_softmax(ctx, node.op, x, out, outer, length, schedule.partials)
    names = ctx.names
    t, i = names.var("row"), names.var("i")
    acc_t = DType.float32 if x.dtype is DType.float16 else x.dtype   # float16 sums in float32
    peak, total = names.var("peak", x.dtype), names.var("total", acc_t)
    base = (t // inner) * (length * inner) + t % inner

    def at(j):
        return base + j * inner

    shifted = ctx.load(x, at(i)) - peak
    if node.op == "softmax":
        final = [K.For(i, K.const(0), K.const(length),
                       [K.Store(out, at(i), K.cast(K.cast(K.Load(out, at(i)), acc_t) / total,
                                                   x.dtype))], "vector")]
    else:
        final = [K.Assign(total, K.call("log", total)),
                 K.For(i, K.const(0), K.const(length),
                       [K.Store(out, at(i), K.cast(K.cast(shifted, acc_t) - total, x.dtype))],
                       "vector")]
    body = [
        K.Let(peak, K.lowest(x.dtype)),
        K.For(i, K.const(0), K.const(length), [
            K.Assign(peak, K.select(K.binary(">", ctx.load(x, at(i)), peak),
                                    ctx.load(x, at(i)), peak))]),
        K.Let(total, K.const(0.0, acc_t)),
        K.For(i, K.const(0), K.const(length), [
            K.Store(out, at(i), K.call("exp", shifted)),
            K.Assign(total, total + K.cast(K.Load(out, at(i)), acc_t))]),
    ] + final
    return [K.For(t, K.const(0), K.const(outer * inner), body, "parallel")]


def _contiguous_softmax(ctx: LowerContext, op: str, x, out: K.Buffer, rows: int,
                        length: int, partials: int) -> list[K.Stmt]:
    """Softmax over contiguous float32 rows: lane-split max, exp and sum, then one scaling
    pass; every loop vectorizes (exp is the branch-free polynomial)."""
    t = ctx.names.var("row")
    base = t * length

    def shifted(peak: K.Expr) -> Loader:
        return lambda i: ctx.load(x, base + i) - peak

    find_peak, peak = lane_reduce(ctx, length, lambda i: ctx.load(x, base + i), "max",
                                  partials, hint="peak")
    if op == "softmax":
        sum_exp, total = lane_reduce(
            ctx, length, lambda i: K.call("exp_poly", shifted(peak)(i)), "sum", partials,
            hint="total", per_element=lambda i, v: [K.Store(out, base + i, v)])
        scale = ctx.names.var("inv", DType.float32)
        i = ctx.names.var("i")
        finish = [K.Let(scale, K.binary("/", K.const(1.0, DType.float32), total)),
                  K.For(i, K.const(0), K.const(length),
                        [K.Store(out, base + i, K.Load(out, base + i) * scale)], "vector")]
    else:
        sum_exp, total = lane_reduce(
            ctx, length, lambda i: K.call("exp_poly", shifted(peak)(i)), "sum", partials,
            hint="total")
        i = ctx.names.var("i")
        finish = [K.Assign(total, K.call("log", total) + peak),
                  K.For(i, K.const(0), K.const(length),
                        [K.Store(out, base + i, ctx.load(x, base + i) - total)], "vector")]
    return [K.For(t, K.const(0), K.const(rows), find_peak + sum_exp + finish, "parallel")]


def lower_layer_norm(ctx: LowerContext, group: FusedGroup, schedule: RowsSchedule
                     ) -> list[K.Stmt]:
    node = group.anchor
    x, scale = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    axis = node.attrs["axis"]
    out_value = group_output(ctx, group)
    out = ctx.buf(out_value)
    rows = math.prod(x.shape[:axis])
    length = math.prod(x.shape[axis:])
    norm_shape = x.shape[axis:]
    names = ctx.names
    t, i = names.var("row"), names.var("i")
    base = t * length
    xi = ctx.load(x, base + i)
    inv_len = K.const(1.0 / length, DType.float32)

    def centered(j: K.Expr) -> K.Expr:
        d = K.cast(ctx.load(x, base + j), DType.float32) - mean
        return d * d

    # mean and variance: lane-split sums, so both loops vectorize
    total, mean = lane_reduce(ctx, length,
                              lambda j: K.cast(ctx.load(x, base + j), DType.float32), "sum",
                              schedule.partials, hint="mean")
    squares, var = lane_reduce(ctx, length, centered, "sum", schedule.partials,
                                hint="var")

    def param(v):
        # scale/bias broadcast against the normalized dims [axis, rank)
        return ctx.load(v, _param_index(v.shape, norm_shape, i))

    y = (xi - mean) * var * param(scale)
    if bias is not None:
        y = y + param(bias)
    row_idx = [(t // s) % d if d > 1 else K.const(0)
               for d, s in zip(x.shape[:axis], strides(x.shape[:axis]))]
    col_idx = [(i // s) % d if d > 1 else K.const(0)
               for d, s in zip(norm_shape, strides(norm_shape))]
    lets, y = epilogue(ctx, group.nodes[1:], node.output, y, out_value.shape,
                       row_idx + col_idx)
    body = total + [K.Assign(mean, mean * inv_len)] + squares + [
        K.Assign(var, K.binary("/", K.const(1.0, DType.float32),
                               K.call("sqrt", var * inv_len
                                      + K.const(node.attrs["epsilon"], DType.float32)))),
        K.For(i, K.const(0), K.const(length), lets + [K.Store(out, base + i, y)], "vector"),
    ]
    return [K.For(t, K.const(0), K.const(rows), body, "parallel")]


def _param_index(shape, norm_shape, i: K.Expr) -> K.Expr:
    """Index into a scale/bias of `shape` broadcast over the normalized dims."""
    if math.prod(shape) == math.prod(norm_shape) and len(shape) <= len(norm_shape):
        return i
    col_idx = [(i // s) % d for d, s in zip(norm_shape, strides(norm_shape))]
    lead = len(norm_shape) - len(shape)
    idx = [K.const(0) if d == 1 else col_idx[lead + k] for k, d in enumerate(shape)]
    return flat_index(shape, idx)
