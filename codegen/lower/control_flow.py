"""The kernels of a loop's data (compiler/ops/loops.py): states copied in and on, scan
outputs written a slice per iteration. The loop itself is the run function's `for`
(codegen/loop_control.py); loop_begin and loop_end have no kernel."""

from __future__ import annotations

from ...compiler.ir import FusedGroup, Value
from .. import kernel_ir as K
from ..schedules import LoopSchedule
from .common import LowerContext, group_output
from .data_dependent import count_buffer
from .elementwise import loops_over


def _copy_from(ctx: LowerContext, group: FusedGroup, source: Value, chunk: int
               ) -> list[K.Stmt]:
    """The group's output, element by element, from `source` (same size)."""
    out = ctx.buf(group_output(ctx, group))
    return loops_over(ctx, [source.type.numel],
                      lambda idx: [K.Store(out, idx[0], ctx.load(source, idx[0]))], chunk)


def lower_loop_copy(ctx: LowerContext, group: FusedGroup, schedule: LoopSchedule
                    ) -> list[K.Stmt]:
    """loop_carry (a state's first value), loop_next (its next one, into its bytes) and
    loop_result (after the loop; a bounded one also reports the iterations run)."""
    node = group.anchor
    source = node.inputs[1] if node.op == "loop_next" else node.inputs[0]
    stmts = _copy_from(ctx, group, source, schedule.chunk)
    if node.op == "loop_result" and node.attrs.get("bounded"):
        stmts.append(K.Store(count_buffer(ctx, group), K.const(0),
                             ctx.load(node.inputs[1], K.const(0))))
    return stmts


def lower_loop_buffer(ctx: LowerContext, group: FusedGroup, schedule: LoopSchedule
                      ) -> list[K.Stmt]:
    """A scan output's buffer, zeroed: rows no iteration writes read as zeros."""
    value = group_output(ctx, group)
    out = ctx.buf(value)
    return loops_over(ctx, [value.type.numel],
                      lambda idx: [K.Store(out, idx[0], K.const(0, value.dtype))],
                      schedule.chunk)


def lower_loop_write(ctx: LowerContext, group: FusedGroup, schedule: LoopSchedule
                     ) -> list[K.Stmt]:
    """acc[..., t, ...] = y along `axis`, t the iteration (bound - 1 - t when `reverse`)."""
    node = group.anchor
    acc, y, counter = node.inputs
    axis, shape = node.attrs["axis"], acc.shape
    length = shape[axis]
    inner = 1
    for dim in shape[axis + 1:]:
        inner *= dim
    out = ctx.buf(group_output(ctx, group))
    t = ctx.names.var("t")
    step = ctx.load(counter, K.const(0))
    row = K.const(length - 1) - step if node.attrs.get("reverse") else step

    def body(idx: list[K.Expr]) -> list[K.Stmt]:
        i = idx[0]
        at = (i // inner * length + t) * inner + i % inner
        return [K.Store(out, at, ctx.load(y, i))]

    return [K.Let(t, row), *loops_over(ctx, [y.type.numel], body, schedule.chunk)]


def lower_nothing(ctx: LowerContext, group: FusedGroup) -> list[K.Stmt]:
    """Loop and If markers: the run function's loop or branch, no kernel."""
    return []
