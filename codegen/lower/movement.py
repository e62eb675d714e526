"""Data movement: every output element is read from one place (or is a pad value), so each
op is an index map from output position to input position."""

from __future__ import annotations

from ...compiler.ir import FusedGroup
from .. import kernel_ir as K
from ..schedules import LoopSchedule, TransposeSchedule
from .common import LowerContext, broadcast_index, flat_index, group_output, strides
from .elementwise import loops_over


def _copy(ctx: LowerContext, group: FusedGroup, read, chunk: int) -> list[K.Stmt]:
    """out[idx] = read(idx) over the whole output."""
    out_value = group_output(ctx, group)
    out = ctx.buf(out_value)
    shape = list(out_value.shape) or [1]

    def body(idx: list[K.Expr]) -> list[K.Stmt]:
        idx = idx[-len(out_value.shape):] if out_value.shape else []
        return [K.Store(out, flat_index(out_value.shape, idx), read(idx))]

    return loops_over(ctx, shape, body, chunk)


def lower_flat_copy(ctx: LowerContext, group: FusedGroup, schedule: LoopSchedule
                    ) -> list[K.Stmt]:
    x = group.anchor.inputs[0]
    out_value = group_output(ctx, group)
    out = ctx.buf(out_value)
    return loops_over(ctx, [out_value.type.numel],
                      lambda idx: [K.Store(out, idx[0], ctx.load(x, idx[0]))], schedule.chunk)


def lower_transpose(ctx: LowerContext, group: FusedGroup, schedule: TransposeSchedule
                    ) -> list[K.Stmt]:
    node = group.anchor
    x = node.inputs[0]
    in_strides = strides(x.shape)
    perm = node.attrs["perm"]

    def read(idx):
        offset: K.Expr = K.const(0)
        for axis, i in zip(perm, idx):
            offset = offset + i * in_strides[axis]
        return ctx.load(x, offset)

    out_value = group_output(ctx, group)
    shape = list(out_value.shape)
    if len(shape) >= 2 and 1 < shape[-1] <= schedule.unroll_inner and perm[-1] != len(perm) - 1:
        # NCHW -> NHWC of an image (C = 3): the channels of one pixel as straight-line
        # stores, so the loop over pixels vectorizes (a group of interleaved stores)
        out = ctx.buf(out_value)

        def body(idx: list[K.Expr]) -> list[K.Stmt]:
            return [K.Store(out, flat_index(shape, idx + [K.const(c)]),
                            read(idx + [K.const(c)])) for c in range(shape[-1])]

        return loops_over(ctx, shape[:-1], body, schedule.chunk)
    return _copy(ctx, group, read, schedule.chunk)


def lower_slice(ctx: LowerContext, group: FusedGroup, schedule: LoopSchedule
                ) -> list[K.Stmt]:
    node = group.anchor
    x = node.inputs[0]
    starts, steps = node.attrs["starts"], node.attrs["steps"]
    return _copy(ctx, group, lambda idx: ctx.load(
        x, flat_index(x.shape, [i * st + s for i, s, st in zip(idx, starts, steps)])),
        schedule.chunk)


def lower_expand(ctx: LowerContext, group: FusedGroup, schedule: LoopSchedule
                 ) -> list[K.Stmt]:
    x = group.anchor.inputs[0]
    out_shape = group_output(ctx, group).shape
    return _copy(ctx, group, lambda idx: ctx.load(x, broadcast_index(x.shape, out_shape, idx)),
                 schedule.chunk)


def lower_gather(ctx: LowerContext, group: FusedGroup, schedule: LoopSchedule
                 ) -> list[K.Stmt]:
    node = group.anchor
    data, indices = node.inputs
    axis = node.attrs["axis"]
    k = len(indices.shape)
    dim = data.shape[axis]

    def read(idx):
        raw = K.cast(ctx.load(indices, flat_index(indices.shape, idx[axis:axis + k])), K.INDEX)
        wrapped = K.select(K.binary("<", raw, 0), raw + dim, raw)
        clamped = K.minimum(K.maximum(wrapped, 0), dim - 1)
        data_idx = idx[:axis] + [clamped] + idx[axis + k:]
        return ctx.load(data, flat_index(data.shape, data_idx))

    return _copy(ctx, group, read, schedule.chunk)


def lower_pad(ctx: LowerContext, group: FusedGroup, schedule: LoopSchedule
              ) -> list[K.Stmt]:
    node = group.anchor
    x = node.inputs[0]
    pads = node.attrs["pads"]
    mode = node.attrs.get("mode", "constant")
    rank = len(x.shape)
    fill = K.const(node.attrs.get("value", 0.0), x.dtype)

    def read(idx):
        src, inside = [], []
        for axis, i in enumerate(idx):
            size = x.shape[axis]
            j = i - pads[axis]
            if mode == "constant":
                inside += [K.binary(">=", j, 0), K.binary("<", j, size)]
            elif mode == "edge":
                j = K.minimum(K.maximum(j, 0), size - 1)
            elif mode == "reflect":
                j = K.select(K.binary("<", j, 0), K.const(0) - j, j)
                j = K.select(K.binary(">=", j, size), 2 * (size - 1) - j, j)
            elif mode == "wrap":
                j = (j + size * (1 + max(pads[axis], 0) // max(size, 1))) % size
            src.append(j)
        value = ctx.load(x, flat_index(x.shape, src))
        return K.select(K.all_of(inside), value, fill) if inside else value

    assert rank == len(group_output(ctx, group).shape)
    return _copy(ctx, group, read, schedule.chunk)


def lower_concat(ctx: LowerContext, group: FusedGroup) -> list[K.Stmt]:
    node = group.anchor
    axis = node.attrs["axis"]
    out_value = group_output(ctx, group)
    stmts: list[K.Stmt] = []
    offset = 0
    for x in node.inputs:
        written = ctx.storage.views.get(id(x))
        if x.type.numel == 0 or (written is not None and written[0] is out_value):
            offset += x.shape[axis]   # its producer wrote it in place (concat_in_place)
            continue
        out = ctx.buf(out_value)
        shape = list(x.shape)

        def body(idx, x=x, offset=offset):
            out_idx = list(idx)
            out_idx[axis] = out_idx[axis] + offset
            return [K.Store(out, flat_index(out_value.shape, out_idx),
                            ctx.load(x, flat_index(x.shape, idx)))]

        stmts += K.loop_nest(ctx.names, shape, [f"i{d}" for d in range(len(shape))], body,
                             inner_kind="vector")
        offset += x.shape[axis]
    return stmts
