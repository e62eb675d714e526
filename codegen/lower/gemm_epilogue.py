"""A fused epilogue (bias, activation, residual, scaling) on vectors of a GEMM tile.

The scalar definitions of the ops (scalar.py) are reused with vector operands: the running
value is a vector of `lanes` consecutive output columns; another operand is a vector load
where it varies along the columns and a splat where it does not. The result may only use
what every renderer prints on vectors (+ - * /, comparisons, selects over a comparison,
unary minus) and the math calls vector_math.py has Functions for (exp, exp_poly, erf), which
become Apply nodes; anything else (other math calls, casts, integer ops) returns None and
the caller keeps its scalar loop.

    for i, v in tile:   y = out[row i, cols v*8 ...]        (a vector)
                        y = select(y < 0, 0, y) ...          (relu, on 8 lanes)
                        out[row i, cols v*8 ...] = y
"""

from __future__ import annotations

from typing import Callable, Sequence

from ...compiler.dtypes import DType
from ...compiler.ir import Node, Value
from .. import kernel_ir as K
from .common import LowerContext, Step, apply_steps, broadcast_index, steps_of
from .scalar import scalar_expr
from .vector_math import FUNCTIONS, vector_call

_ARITH = ("+", "-", "*", "/")


def vectorize_expr(e: K.Expr, lanes: int, loads: dict[int, bool]) -> K.Expr | None:
    """`e` with every operand a vector of `lanes`; None where it has no vector form.
    loads: id(buffer) -> whether a Load of it varies along the columns."""
    if isinstance(e, (K.VecVar, K.VecLoad, K.Broadcast)):
        return e
    if isinstance(e, K.Const):
        return K.Broadcast(e, lanes) if e.dtype is DType.float32 else None
    if isinstance(e, K.Load):
        if e.dtype is not DType.float32 or id(e.buffer) not in loads:
            return None
        return K.VecLoad(e.buffer, e.index, lanes) if loads[id(e.buffer)] \
            else K.Broadcast(e, lanes)
    if isinstance(e, K.Binary) and e.op in _ARITH + K.COMPARISONS:
        if e.a.dtype is not DType.float32 or e.b.dtype is not DType.float32:
            return None
        a, b = vectorize_expr(e.a, lanes, loads), vectorize_expr(e.b, lanes, loads)
        if a is None or b is None:
            return None
        return K.Binary(e.op, a, b, e.dtype)
    if isinstance(e, K.Select) and isinstance(e.cond, K.Binary) \
            and e.cond.op in K.COMPARISONS and e.dtype is DType.float32:
        parts = [vectorize_expr(x, lanes, loads) for x in (e.cond, e.a, e.b)]
        if any(p is None for p in parts):
            return None
        return K.Select(parts[0], parts[1], parts[2], e.dtype)
    if isinstance(e, K.Unary) and e.op == "-" and e.dtype is DType.float32:
        x = vectorize_expr(e.x, lanes, loads)
        return None if x is None else K.Unary("-", x, e.dtype)
    if isinstance(e, K.Call) and e.fn in FUNCTIONS and e.dtype is DType.float32:
        x = vectorize_expr(e.args[0], lanes, loads)
        return None if x is None else vector_call(e.fn, x)
    return None


def vector_steps(ctx: LowerContext, steps: Sequence[Step], acc: K.Expr, lanes: int,
                 out_shape: Sequence[int], out_idx: Sequence[K.Expr],
                 shape_of: Callable[[Value], Sequence[int]]
                 ) -> tuple[list[K.Stmt], K.Expr] | None:
    """`steps` (common.Step) applied to `acc`, a vector of the running value at output
    columns out_idx[-1] .. + lanes (the last dim of `out_shape` is the column dim), as local
    vector definitions and a vector expression; None when some op has no vector form."""
    stmts: list[K.Stmt] = []
    current = acc
    for op, inputs, attrs, dtype in steps:
        if dtype is not DType.float32:
            return None
        args: list[K.Expr] = []
        loads: dict[int, bool] = {}
        for v in inputs:
            if v is None:
                args.append(current)
                continue
            shape = list(shape_of(v))
            arg = ctx.load(v, broadcast_index(shape, out_shape, out_idx))
            if isinstance(arg, K.Load):
                loads[id(arg.buffer)] = bool(shape) and shape[-1] != 1
            args.append(arg)
        vec = vectorize_expr(scalar_expr(op, args, attrs, dtype), lanes, loads)
        if vec is None:
            return None
        if not isinstance(vec, (K.VecVar, K.VecLoad, K.Broadcast)):   # keep C text small
            local = K.VecVar(ctx.names.var("vv").name, lanes)
            stmts.append(K.Let(local, vec))
            vec = local
        current = vec
    return stmts, current


def vector_epilogue(ctx: LowerContext, nodes: Sequence[Node], source: Value, acc: K.Expr,
                    lanes: int, out_shape: Sequence[int], out_idx: Sequence[K.Expr],
                    shape_of: Callable[[Value], Sequence[int]]
                    ) -> tuple[list[K.Stmt], K.Expr] | None:
    """vector_steps for the elementwise chain `nodes` following `source`."""
    return vector_steps(ctx, steps_of(nodes, source), acc, lanes, out_shape, out_idx,
                        shape_of)


def finish_vector(ctx: LowerContext, steps: Sequence[Step], out: K.Buffer, acc: K.Expr,
                  lanes: int, at: K.Expr, merged: tuple[Sequence[int], Sequence[K.Expr]],
                  shape_of: Callable[[Value], Sequence[int] | None],
                  index4: Callable[[K.Expr], list[K.Expr]], out_shape: Sequence[int],
                  spill: K.Buffer) -> list[K.Stmt]:
    """out[at .. at + lanes) = steps(acc), where acc holds `lanes` consecutive channels of
    one output pixel: on the vector (merged = ([M, N] output, [pixel, channel]) index), or
    lane by lane through the local `spill` where some step has no vector form or an operand
    does not fold onto [M, N]; index4(j) is lane j's index in the output's own shape."""
    foldable = all(shape_of(v) is not None for _, ins, _, _ in steps for v in ins
                   if v is not None)
    res = vector_steps(ctx, steps, acc, lanes, merged[0], merged[1], shape_of) \
        if foldable else None
    if res is not None:
        lets, value = res
        return lets + [K.VecStore(out, at, value, lanes)]
    ctx.buffers[id(spill)] = spill
    j = ctx.names.var("j")
    lets, value = apply_steps(ctx, steps, K.Load(spill, j), out_shape, index4(j))
    return [K.VecStore(spill, K.const(0), acc, lanes),
            K.For(j, K.const(0), K.const(lanes), lets + [K.Store(out, at + j, value)])]
