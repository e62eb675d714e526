"""Vectorizable reductions along one contiguous row (softmax, layer norm, attention).

C compilers keep a float sum or max over a row scalar: vectorizing it would reassociate the
operations, which they may not do without -ffast-math. These builders split the row into
`partials` interleaved results held in a small local array,

    for c in [0, n / lanes): for l in [0, lanes): part[l] = part[l] (+|max) x[c * lanes + l]

so the inner loop is one vector operation per block, then combine the lanes and the tail
(n % lanes elements) in scalar code. Every builder returns statements plus the scalar
variable holding the result.
"""

from __future__ import annotations

from typing import Callable

from ...compiler.dtypes import DType
from .. import kernel_ir as K
from .common import LowerContext

Loader = Callable[[K.Expr], K.Expr]


def _local(ctx: LowerContext, hint: str, dtype: DType, numel: int) -> K.Buffer:
    buf = K.Buffer(ctx.names.var(hint).name, dtype, numel, "local")
    ctx.buffers[id(buf)] = buf
    return buf


def _max(a: K.Expr, b: K.Expr) -> K.Expr:
    return K.select(K.binary(">", a, b), a, b)


def _add(a: K.Expr, b: K.Expr) -> K.Expr:
    return a + b


def lane_reduce(ctx: LowerContext, length: int, value: Loader, combine: str, partials: int,
                dtype: DType = DType.float32, hint: str = "acc",
                per_element: Callable[[K.Expr, K.Expr], list[K.Stmt]] | None = None
                ) -> tuple[list[K.Stmt], K.Var]:
    """Reduce value(i) for i in [0, length) with combine 'sum' or 'max', in `partials`
    interleaved partial results (a vector register's lanes, or several registers).

    per_element(i, v), when given, adds statements run for each element before it is
    combined (e.g. storing v): v is a local bound to value(i).
    """
    names = ctx.names
    op = _add if combine == "sum" else _max
    init = K.const(0.0, dtype) if combine == "sum" else K.lowest(dtype)
    lanes = partials
    blocks = length // lanes
    result = names.var(hint, dtype)
    stmts: list[K.Stmt] = [K.Let(result, init)]

    def step(i: K.Expr, update: Callable[[K.Expr], list[K.Stmt]]) -> list[K.Stmt]:
        v = names.var("v", dtype)
        body = [K.Let(v, value(i))]
        if per_element is not None:
            body += per_element(i, v)
        return body + update(v)

    if blocks > 0:
        part = _local(ctx, f"{hint}_lanes", dtype, lanes)
        c, lane, fold = names.var("c"), names.var("l"), names.var("l")
        stmts += [
            K.For(lane, K.const(0), K.const(lanes), [K.Store(part, lane, init)], "vector"),
            K.For(c, K.const(0), K.const(blocks), [
                K.For(lane, K.const(0), K.const(lanes),
                      step(c * lanes + lane,
                           lambda v: [K.Store(part, lane, op(K.Load(part, lane), v))]),
                      "vector")]),
            K.For(fold, K.const(0), K.const(lanes),
                  [K.Assign(result, op(result, K.Load(part, fold)))]),
        ]
    if blocks * lanes < length:
        i = names.var("i")
        stmts.append(K.For(i, K.const(blocks * lanes), K.const(length),
                           step(i, lambda v: [K.Assign(result, op(result, v))])))
    return stmts, result
