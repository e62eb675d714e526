"""Chains of elementwise ops: one loop nest over the output, the chain composed as one
expression per element. Adjacent dims that every operand treats alike are merged first, so a
same-shape chain is a single contiguous loop whatever its rank."""

from __future__ import annotations

import math
from typing import Sequence

from ...compiler.ir import FusedGroup, Value
from .. import kernel_ir as K
from ..schedules import LoopSchedule
from .common import LowerContext, epilogue, flat_index, group_output


def coalesce(out_shape: Sequence[int], operand_shapes: Sequence[Sequence[int]]
             ) -> tuple[list[int], list[list[int]]]:
    """Merge adjacent output dims where each operand either spans both or broadcasts both."""
    rank = len(out_shape)
    aligned = [[1] * (rank - len(s)) + list(s) for s in operand_shapes]
    present = [[d != 1 or out_shape[i] == 1 for i, d in enumerate(s)] for s in aligned]
    groups: list[list[int]] = []
    for i in range(rank):
        if out_shape[i] == 1:
            continue
        if groups and all(p[i] == p[groups[-1][-1]] for p in present):
            groups[-1].append(i)
        else:
            groups.append([i])
    new_out = [math.prod(out_shape[i] for i in g) for g in groups] or [1]
    new_ops = []
    for s in aligned:
        new_ops.append([math.prod(s[i] for i in g) for g in groups] or [1])
    return new_out, new_ops


def loops_over(ctx: LowerContext, shape: Sequence[int], body_fn, chunk: int) -> list[K.Stmt]:
    """A parallel loop nest over `shape` (innermost contiguous, marked vector); a single long
    dim is split into tasks of `chunk` elements so threads share it."""
    if len(shape) == 1 and shape[0] > 2 * chunk:
        total = shape[0]
        task, i = ctx.names.var("task"), ctx.names.var("i")
        inner = K.For(i, task * chunk, K.minimum(total, task * chunk + chunk), body_fn([i]),
                      "vector")
        return [K.For(task, K.const(0), K.const(-(-total // chunk)), [inner], "parallel")]
    hints = [f"i{d}" for d in range(len(shape))]
    return K.loop_nest(ctx.names, shape, hints, body_fn, outer_kind="parallel",
                       inner_kind="vector")


def lower_elementwise(ctx: LowerContext, group: FusedGroup, schedule: LoopSchedule
                      ) -> list[K.Stmt]:
    out_value = group_output(ctx, group)
    operands: list[Value] = group.inputs
    shape, operand_shapes = coalesce(out_value.shape, [v.shape for v in operands])
    coalesced = {id(v): s for v, s in zip(operands, operand_shapes)}
    out = ctx.buf(out_value)

    def body(idx: list[K.Expr]) -> list[K.Stmt]:
        lets, value = epilogue(ctx, group.nodes, None, None, shape, idx,
                               shape_of=lambda v: coalesced[id(v)])
        return lets + [K.Store(out, flat_index(shape, idx), value)]

    return loops_over(ctx, shape, body, schedule.chunk)
