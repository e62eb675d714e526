"""Indexed reads and writes, scans and top-k: gather_elements, scatter_elements, scatter_nd,
cumsum/cumprod, topk_values/topk_indices. Scatters copy their data, then apply updates in
order in one serial loop (duplicate indices combine as the spec says)."""

from __future__ import annotations

import math

from ...compiler.ir import FusedGroup
from .. import kernel_ir as K
from ..schedules import LoopSchedule
from .common import LowerContext, flat_index, group_output, strides
from .elementwise import loops_over


def _wrapped(raw: K.Expr, dim: int) -> K.Expr:
    """A run-time index made non-negative and clamped into [0, dim) (out-of-range indices are
    invalid in ONNX; clamping keeps memory safe)."""
    raw = K.cast(raw, K.INDEX)
    wrapped = K.select(K.binary("<", raw, 0), raw + dim, raw)
    return K.minimum(K.maximum(wrapped, 0), max(dim - 1, 0))


def _nest(ctx: LowerContext, shape, body, outer_kind: str = "serial") -> list[K.Stmt]:
    shape = list(shape) or [1]
    return K.loop_nest(ctx.names, shape, [f"i{d}" for d in range(len(shape))],
                       lambda idx: body(idx[:len(shape)]), outer_kind=outer_kind)


def lower_gather_elements(ctx: LowerContext, group: FusedGroup, schedule: LoopSchedule
                          ) -> list[K.Stmt]:
    node = group.anchor
    data, indices = node.inputs
    axis = node.attrs["axis"]
    out_value = group_output(ctx, group)
    out = ctx.buf(out_value)

    def body(idx):
        pos = list(idx)
        pos[axis] = _wrapped(ctx.load(indices, flat_index(indices.shape, idx)),
                             data.shape[axis])
        return [K.Store(out, flat_index(out_value.shape, idx),
                        ctx.load(data, flat_index(data.shape, pos)))]

    if out_value.type.numel == 0:
        return []
    return loops_over(ctx, list(out_value.shape) or [1], body, schedule.chunk)


def _combine(reduction: str, old: K.Expr, new: K.Expr) -> K.Expr:
    if reduction == "add":
        return old + new
    if reduction == "mul":
        return old * new
    if reduction == "max":
        return K.select(K.binary(">", new, old), new, old)
    if reduction == "min":
        return K.select(K.binary("<", new, old), new, old)
    return new


def _copy_data(ctx: LowerContext, data, out) -> list[K.Stmt]:
    i = ctx.names.var("c")
    return [K.For(i, K.const(0), K.const(data.type.numel),
                  [K.Store(out, i, ctx.load(data, i))], "vector")]


def lower_scatter_elements(ctx: LowerContext, group: FusedGroup) -> list[K.Stmt]:
    node = group.anchor
    data, indices, updates = node.inputs
    axis, reduction = node.attrs["axis"], node.attrs.get("reduction", "none")
    out_value = group_output(ctx, group)
    out = ctx.buf(out_value)

    def body(idx):
        pos = list(idx)
        pos[axis] = _wrapped(ctx.load(indices, flat_index(indices.shape, idx)),
                             data.shape[axis])
        target = flat_index(data.shape, pos)
        new = ctx.load(updates, flat_index(updates.shape, idx))
        return [K.Store(out, target, _combine(reduction, K.Load(out, target), new))]

    stmts = _copy_data(ctx, data, out)
    if indices.type.numel:
        stmts += _nest(ctx, indices.shape, body)
    return stmts


def lower_scatter_nd(ctx: LowerContext, group: FusedGroup) -> list[K.Stmt]:
    node = group.anchor
    data, indices, updates = node.inputs
    reduction = node.attrs.get("reduction", "none")
    out_value = group_output(ctx, group)
    out = ctx.buf(out_value)
    depth = indices.shape[-1]
    lead = indices.shape[:-1]
    slice_size = math.prod(data.shape[depth:])
    data_strides = strides(data.shape)

    def body(idx):
        base: K.Expr = K.const(0)
        for d in range(depth):
            where = list(idx) + [K.const(d)]
            raw = ctx.load(indices, flat_index(indices.shape, where))
            base = base + _wrapped(raw, data.shape[d]) * data_strides[d]
        j = ctx.names.var("j")
        update_at = flat_index(list(lead) or [1], list(idx) or [K.const(0)]) * slice_size + j
        target = base + j
        new = ctx.load(updates, update_at)
        return [K.For(j, K.const(0), K.const(slice_size),
                      [K.Store(out, target, _combine(reduction, K.Load(out, target), new))])]

    stmts = _copy_data(ctx, data, out)
    if math.prod(lead) and slice_size:
        stmts += _nest(ctx, lead, body)
    return stmts


def _rows(shape, axis: int) -> tuple[int, int, int]:
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def lower_scan(ctx: LowerContext, group: FusedGroup) -> list[K.Stmt]:
    node = group.anchor
    x = node.inputs[0]
    out = ctx.buf(group_output(ctx, group))
    outer, length, inner = _rows(x.shape, node.attrs["axis"])
    if outer * length * inner == 0:
        return []
    names = ctx.names
    row, t = names.var("row"), names.var("t")
    acc = names.var("acc", x.dtype)
    step = t if not node.attrs.get("reverse", 0) else (length - 1) - t
    at = (row // inner) * (length * inner) + row % inner + step * inner
    combine = (lambda a, b: a + b) if node.op == "cumsum" else (lambda a, b: a * b)
    identity = K.const(0 if node.op == "cumsum" else 1, x.dtype)
    if node.attrs.get("exclusive", 0):
        inner_body = [K.Store(out, at, acc), K.Assign(acc, combine(acc, ctx.load(x, at)))]
    else:
        inner_body = [K.Assign(acc, combine(acc, ctx.load(x, at))), K.Store(out, at, acc)]
    body = [K.Let(acc, identity), K.For(t, K.const(0), K.const(length), inner_body)]
    return [K.For(row, K.const(0), K.const(outer * inner), body, "parallel")]


def lower_topk(ctx: LowerContext, group: FusedGroup) -> list[K.Stmt]:
    """Each element's rank is how many elements beat it (larger/smaller, or equal with a
    smaller index); an element of rank < k is written at its rank. O(n^2) per row, no
    scratch memory, and the order ties need."""
    node = group.anchor
    x = node.inputs[0]
    axis, k, largest = node.attrs["axis"], node.attrs["k"], node.attrs.get("largest", 1)
    out = ctx.buf(group_output(ctx, group))
    outer, length, inner = _rows(x.shape, axis)
    if outer * k * inner == 0:
        return []
    names = ctx.names
    row, i, j = names.var("row"), names.var("i"), names.var("j")
    rank = names.var("rank")
    base = (row // inner) * (length * inner) + row % inner
    xi, xj = ctx.load(x, base + i * inner), ctx.load(x, base + j * inner)
    better = K.binary(">" if largest else "<", xj, xi)
    tie = K.binary("&&", K.binary("==", xj, xi), K.binary("<", j, i))
    beats = K.cast(K.binary("||", better, tie), K.INDEX)
    out_base = (row // inner) * (k * inner) + row % inner
    value = xi if node.op == "topk_values" else K.cast(i, out.dtype)
    body = [K.For(i, K.const(0), K.const(length), [
        K.Let(rank, K.const(0)),
        K.For(j, K.const(0), K.const(length), [K.Assign(rank, rank + beats)]),
        K.If(K.binary("<", rank, k), [K.Store(out, out_base + rank * inner, value)]),
    ])]
    return [K.For(row, K.const(0), K.const(outer * inner), body, "parallel")]
