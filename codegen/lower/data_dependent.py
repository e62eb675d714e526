"""Kernels of data-dependent-size ops (nonzero, nms; unique in unique.py) and the count
slots they report through.

Such an op's output is a graph output declared at its upper-bound shape. Its kernel writes
the result compactly (row-major with the actual dims) at the start of the caller's buffer and
stores the actual extent of the bounded dim, as an int64, in a count slot: 8 arena bytes
reserved here, above the memory plan, which the runtime reads after the run (output_shape)."""

from __future__ import annotations

from ...compiler.dtypes import DType
from ...compiler.errors import Problem, UnsupportedModelError
from ...compiler.ir import FusedGroup, Graph
from ...compiler.ops.data_dependent import bounded_axis
from .. import kernel_ir as K
from .common import LowerContext, Storage, group_output, strides

_SLOT = 8


def reserve_counts(graph: Graph, storage: Storage) -> dict[int, tuple[int, int]]:
    """Check bounded values are graph outputs only and reserve their count slots; returns
    {id(value): (bounded axis, arena offset of its count)}."""
    problems, axes = [], {}
    output_ids = [id(v) for v in graph.outputs]
    for node in graph.nodes:
        axis = bounded_axis(node.op, node.attrs)
        if axis is None:
            continue
        value = node.output
        if value.users or output_ids.count(id(value)) != 1:
            problems.append(Problem(
                node.name, node.op, "kiln", 0,
                "its result has a data-dependent size and is read by another op (or is not "
                "exactly one graph output); Kiln supports data-dependent sizes only on graph "
                "outputs", "make the result a graph output and do the rest after the run"))
        axes[id(value)] = axis
    if problems:
        raise UnsupportedModelError(problems)
    slots = {key: (axis, storage.scratch_base + _SLOT * i)
             for i, (key, axis) in enumerate(axes.items())}
    if slots:
        size = -(-_SLOT * len(slots) // 64) * 64
        storage.scratch_base += size
        graph.plan.arena_size += size
    storage.count_slots = {key: offset for key, (_, offset) in slots.items()}
    return slots


def count_buffer(ctx: LowerContext, group: FusedGroup) -> K.Buffer:
    """The count slot of the group's (bounded) output, as a one-element int64 buffer."""
    value = group_output(ctx, group)
    offset = ctx.storage.count_slots[id(value)]   # set by reserve_counts
    buffer = K.Buffer(ctx.names.var("count").name, DType.int64, 1, "arena", offset)
    ctx.buffers[id(buffer)] = buffer
    return buffer


def lower_nonzero(ctx: LowerContext, group: FusedGroup) -> list[K.Stmt]:
    """Count the non-zeros, then write each one's coordinates: row d holds dim d's."""
    x = group.anchor.inputs[0]
    out, slot = ctx.buf(group_output(ctx, group)), count_buffer(ctx, group)
    shape = list(x.shape) or [1]
    names = ctx.names
    i, j, count, pos = names.var("i"), names.var("j"), names.var("count"), names.var("pos")
    nonzero = lambda at: K.binary("!=", ctx.load(x, at), K.const(0, x.dtype))  # noqa: E731
    writes = [K.Store(out, count * d + pos, (j // stride) % dim)
              for d, (dim, stride) in enumerate(zip(shape, strides(shape)))]
    return [K.Let(count, K.const(0)), K.Let(pos, K.const(0)),
            K.For(i, K.const(0), K.const(x.type.numel),
                  [K.If(nonzero(i), [K.Assign(count, count + 1)])]),
            K.Store(slot, K.const(0), count),
            K.For(j, K.const(0), K.const(x.type.numel),
                  [K.If(nonzero(j), writes + [K.Assign(pos, pos + 1)])])]


def _corners(ctx: LowerContext, boxes, at: K.Expr, center: int) -> tuple[K.Expr, ...]:
    """(x0, y0, x1, y1) with x0 <= x1 and y0 <= y1 of the box at flat offset `at`."""
    c = [ctx.load(boxes, at + k) for k in range(4)]
    if center:
        half_w, half_h = c[2] / K.const(2.0, boxes.dtype), c[3] / K.const(2.0, boxes.dtype)
        return c[0] - half_w, c[1] - half_h, c[0] + half_w, c[1] + half_h
    return (K.minimum(c[1], c[3]), K.minimum(c[0], c[2]),
            K.maximum(c[1], c[3]), K.maximum(c[0], c[2]))


def _overlaps(ctx, boxes, a: K.Expr, b: K.Expr, center: int, threshold: K.Expr) -> K.Expr:
    """IoU(a, b) > threshold, false for empty boxes or no overlap (as ONNX Runtime)."""
    ax0, ay0, ax1, ay1 = _corners(ctx, boxes, a, center)
    bx0, by0, bx1, by1 = _corners(ctx, boxes, b, center)
    zero = K.const(0.0, boxes.dtype)
    iw = K.minimum(ax1, bx1) - K.maximum(ax0, bx0)
    ih = K.minimum(ay1, by1) - K.maximum(ay0, by0)
    area_a, area_b = (ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0)
    inter = iw * ih
    union = area_a + area_b - inter
    safe = K.select(K.binary(">", union, zero), union, K.const(1.0, boxes.dtype))
    return K.all_of([K.binary(">", iw, zero), K.binary(">", ih, zero),
                     K.binary(">", area_a, zero), K.binary(">", area_b, zero),
                     K.binary(">", union, zero), K.binary(">", inter / safe, threshold)])


def lower_nms(ctx: LowerContext, group: FusedGroup) -> list[K.Stmt]:
    """Per (batch, class): pick the best unflagged box over the score threshold (ties: the
    lower index), emit it, flag it and every box it overlaps by more than the IoU threshold."""
    node = group.anchor
    boxes, scores, max_output, iou, least = node.inputs
    center = node.attrs.get("center_point_box", 0)
    out, slot = ctx.buf(group_output(ctx, group)), count_buffer(ctx, group)
    batches, classes, n = scores.shape
    names = ctx.names
    flags = ctx.storage.scratch(names.var("flags").name, DType.int64, max(n, 1))
    ctx.buffers[id(flags)] = flags
    b, c, k, j, m = (names.var(h) for h in ("b", "c", "k", "j", "m"))
    total, kept, best = names.var("total"), names.var("kept"), names.var("best")
    limit = K.cast(ctx.load(max_output, K.const(0)), K.INDEX)
    row = (b * classes + c) * n
    score = lambda i: ctx.load(scores, row + i)  # noqa: E731
    box = lambda i: (b * n + i) * 4  # noqa: E731
    candidate = K.all_of([K.binary("==", K.Load(flags, j), K.const(0)),
                          K.binary(">", score(j), ctx.load(least, K.const(0)))])
    better = K.binary("||", K.binary("<", best, K.const(0)),
                      K.binary(">", score(j), score(K.maximum(best, 0))))
    pick = [K.Let(best, K.const(-1)),
            K.For(j, K.const(0), K.const(n),
                  [K.If(K.all_of([candidate, better]), [K.Assign(best, j)])]),
            K.If(K.all_of([K.binary(">=", best, K.const(0)), K.binary("<", kept, limit)]), [
                K.Store(out, total * 3, b), K.Store(out, total * 3 + 1, c),
                K.Store(out, total * 3 + 2, best),
                K.Assign(total, total + 1), K.Assign(kept, kept + 1),
                K.Store(flags, best, K.const(1)),
                K.For(m, K.const(0), K.const(n), [K.If(
                    K.all_of([K.binary("==", K.Load(flags, m), K.const(0)),
                              _overlaps(ctx, boxes, box(best), box(m), center,
                                        ctx.load(iou, K.const(0)))]),
                    [K.Store(flags, m, K.const(1))])])])]
    per_class = [K.Let(kept, K.const(0)),
                 K.For(m, K.const(0), K.const(n), [K.Store(flags, m, K.const(0))]),
                 K.For(k, K.const(0), K.const(n), pick)]
    return [K.Let(total, K.const(0)),
            K.For(b, K.const(0), K.const(batches),
                  [K.For(c, K.const(0), K.const(classes), per_class)]),
            K.Store(slot, K.const(0), total)]
