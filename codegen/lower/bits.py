"""Lowering of `bitcast`: copy the input's bytes, loaded through a pointer of the output's
dtype (the C renderer declares each kernel buffer with its own element type)."""

from __future__ import annotations

from ...compiler.ir import FusedGroup
from .. import kernel_ir as K
from ..schedules import LoopSchedule
from .common import LowerContext, group_output
from .elementwise import loops_over


def lower_bitcast(ctx: LowerContext, group: FusedGroup, schedule: LoopSchedule
                  ) -> list[K.Stmt]:
    """out[i] = ((out_type *)x)[i] over every element."""
    x = group.anchor.inputs[0]
    out_value = group_output(ctx, group)
    out = ctx.buf(out_value)
    source = ctx.storage.buffer(x)
    key = ("bitcast", id(x))
    if key not in ctx.buffers:
        ctx.buffers[key] = K.Buffer(f"{source.name}_bits", out_value.dtype, source.numel,
                                    source.storage, source.location)
    view = ctx.buffers[key]
    return loops_over(ctx, [out_value.type.numel],
                      lambda idx: [K.Store(out, idx[0], K.Load(view, idx[0]))], schedule.chunk)
