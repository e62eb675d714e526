"""Sub-byte storage types (int4, uint4, int2, uint2, float4e2m1): `unpack` decodes each element
from its share of a byte; `pack` writes whole bytes (each task encodes the 2 or 4 elements of
one byte), so threads never share a byte. The per-element codecs are C prelude functions
(runtime/kiln_convert.h)."""

from __future__ import annotations

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup
from .. import kernel_ir as K
from ..schedules import LoopSchedule
from .common import LowerContext, group_output
from .elementwise import loops_over


def lower_unpack(ctx: LowerContext, group: FusedGroup, schedule: LoopSchedule
                 ) -> list[K.Stmt]:
    x = group.anchor.inputs[0]
    out_value = group_output(ctx, group)
    src, out = ctx.buf(x), ctx.buf(out_value)
    per_byte = 8 // x.dtype.bits

    def body(idx: list[K.Expr]) -> list[K.Stmt]:
        i = idx[0]
        byte = K.Load(src, i / per_byte)
        code = K.Call(f"kiln_unpack{x.dtype.bits}", (byte, i % per_byte), DType.uint8)
        value = K.Call(f"kiln_decode_{x.dtype.name}", (code,), out_value.dtype)
        return [K.Store(out, i, value)]

    return loops_over(ctx, [max(out_value.type.numel, 1)], body, schedule.chunk)


def lower_pack(ctx: LowerContext, group: FusedGroup, schedule: LoopSchedule
               ) -> list[K.Stmt]:
    x = group.anchor.inputs[0]
    out_value = group_output(ctx, group)
    src, out = ctx.buf(x), ctx.buf(out_value)
    to = out_value.dtype
    per_byte = 8 // to.bits
    numel = x.type.numel
    source_type = DType.float32 if to is DType.float4e2m1 else DType.int64

    def code(index: K.Expr) -> K.Expr:
        inside = K.binary("<", index, numel)
        value = K.cast(K.Load(src, K.minimum(index, numel - 1)), source_type)
        encoded = K.Call(f"kiln_encode_{to.name}", (value, K.const(1, DType.int32)),
                         DType.uint8)
        return K.select(inside, encoded, K.const(0, DType.uint8))

    def body(idx: list[K.Expr]) -> list[K.Stmt]:
        j = idx[0]
        codes = tuple(code(j * per_byte + k) for k in range(per_byte))
        return [K.Store(out, j, K.Call(f"kiln_pack{to.bits}", codes, DType.uint8))]

    return loops_over(ctx, [max(to.nbytes(numel), 1)], body, schedule.chunk)
