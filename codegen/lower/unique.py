"""Unique's kernels: unique_values / unique_indices / unique_inverse / unique_counts.

x is seen as [pre, length, post] (axis None: [1, numel, 1]); slice k is x[:, k, :]. Each
kernel finds every slice's first equal slice (first[], O(length^2 * slice)), ranks the first
occurrences (sorted: by lexicographic order of their elements, else by position) and writes
its result; the bounded ones record the number of distinct slices. Plain serial loops: Unique
is not hot (quadratic in the length of the axis)."""

from __future__ import annotations

import math

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup
from .. import kernel_ir as K
from .common import LowerContext, group_output
from .data_dependent import count_buffer


def _compare(ctx: LowerContext, x, dims, a: K.Expr, b: K.Expr, result: K.Var) -> list[K.Stmt]:
    """result = -1, 0 or 1 as slice a is before, equal to or after slice b."""
    pre, length, post = dims
    e = ctx.names.var("e")
    at = lambda k: (e // post * length + k) * post + e % post  # noqa: E731
    va, vb = ctx.load(x, at(a)), ctx.load(x, at(b))
    order = K.select(K.binary("<", va, vb), K.const(-1),
                     K.select(K.binary("<", vb, va), K.const(1), K.const(0)))
    return [K.Assign(result, K.const(0)),
            K.For(e, K.const(0), K.const(pre * post),
                  [K.If(K.binary("==", result, K.const(0)), [K.Assign(result, order)])])]


def lower_unique(ctx: LowerContext, group: FusedGroup) -> list[K.Stmt]:
    node = group.anchor
    x = node.inputs[0]
    axis, sorted_ = node.attrs.get("axis"), node.attrs.get("sorted", 1)
    shape = list(x.shape)
    if axis is None:
        dims = (1, x.type.numel, 1)
    else:
        dims = (math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:]))
    pre, length, post = dims
    if length == 0:
        return [K.Store(count_buffer(ctx, group), K.const(0), K.const(0))] \
            if node.op != "unique_inverse" else []
    names = ctx.names
    scratch = ctx.storage.scratch(names.var("uniq").name, DType.int64, 2 * length)
    first = scratch
    rank = K.Buffer(names.var("rank").name, DType.int64, length, "arena",
                    scratch.location + 8 * length)
    for b in (first, rank):
        ctx.buffers[id(b)] = b
    i, j, f, r, cmp, count = (names.var(h) for h in ("i", "j", "f", "r", "cmp", "count"))
    is_first = lambda k: K.binary("==", K.Load(first, k), k)  # noqa: E731
    find_first = [K.Assign(f, i),
                  K.For(j, K.const(0), i, [K.If(K.binary("==", f, i),
                        _compare(ctx, x, dims, j, i, cmp)
                        + [K.If(K.binary("==", cmp, K.const(0)), [K.Assign(f, j)])])]),
                  K.Store(first, i, f),
                  K.If(K.binary("==", f, i), [K.Assign(count, count + 1)])]
    if sorted_:
        before = _compare(ctx, x, dims, j, i, cmp) + [
            K.If(K.binary("<", cmp, K.const(0)), [K.Assign(r, r + 1)])]
    else:
        before = [K.If(K.binary("<", j, i), [K.Assign(r, r + 1)])]
    find_rank = [K.If(is_first(i), [
        K.Assign(r, K.const(0)),
        K.For(j, K.const(0), K.const(length), [K.If(is_first(j), before)]),
        K.Store(rank, i, r)])]
    body = [K.Let(f, K.const(0)), K.Let(r, K.const(0)), K.Let(cmp, K.const(0)),
            K.Let(count, K.const(0)),
            K.For(i, K.const(0), K.const(length), find_first),
            K.For(i, K.const(0), K.const(length), find_rank)]
    out_value = group_output(ctx, group)
    out = ctx.buf(out_value)
    if node.op != "unique_inverse":
        body.append(K.Store(count_buffer(ctx, group), K.const(0), count))
    if node.op == "unique_values":
        e = names.var("e")
        p, q = e // post, e % post
        body.append(K.For(i, K.const(0), K.const(length), [K.If(is_first(i), [
            K.For(e, K.const(0), K.const(pre * post), [K.Store(
                out, (p * count + K.Load(rank, i)) * post + q,
                ctx.load(x, (p * length + i) * post + q))])])]))
    elif node.op == "unique_indices":
        body.append(K.For(i, K.const(0), K.const(length), [
            K.If(is_first(i), [K.Store(out, K.Load(rank, i), i)])]))
    elif node.op == "unique_inverse":
        body.append(K.For(i, K.const(0), K.const(length), [
            K.Store(out, i, K.Load(rank, K.Load(first, i)))]))
    else:
        slot = K.Load(rank, K.Load(first, i))
        body += [K.For(i, K.const(0), K.const(length), [K.Store(out, i, K.const(0))]),
                 K.For(i, K.const(0), K.const(length), [
                     K.Store(out, slot, K.Load(out, slot) + 1)])]
    return body
