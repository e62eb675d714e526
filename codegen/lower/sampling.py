"""grid_sample: per output element, the grid position is read and denormalized per axis, its
taps (1 nearest, 2 linear, 4 cubic per axis) padded (zeros/border/reflection), and the
weighted taps summed; all taps are unrolled (2^r or 4^r loads)."""

from __future__ import annotations

import itertools

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup
from ...compiler.ops.sampling import borders, cubic_weights
from .. import kernel_ir as K
from ..schedules import LoopSchedule
from .common import LowerContext, flat_index, group_output
from .elementwise import loops_over

F = DType.float32


def _f(value: float) -> K.Expr:
    return K.const(value, F)


def _where(cond, a, b):
    return K.select(cond, a, b)


def _reflect(v: K.Expr, low: float, high: float) -> K.Expr:
    span = high - low
    if span == 0:
        return _f(low)
    below, above = K.binary("<", v, _f(low)), K.binary(">", v, _f(high))
    dx = _where(below, _f(low) - v, v - _f(high))
    n = K.call("floor", dx / _f(span))
    r = dx - n * _f(span)
    even = K.binary("==", K.cast(n, K.INDEX) % 2, 0)
    folded_below = _where(even, _f(low) + r, _f(high) - r)
    folded_above = _where(even, _f(high) - r, _f(low) + r)
    return _where(below, folded_below, _where(above, folded_above, v))


def _clamp(v: K.Expr, low, high) -> K.Expr:
    return K.minimum(K.maximum(v, low), high)


def lower_grid_sample(ctx: LowerContext, group: FusedGroup, schedule: LoopSchedule
                      ) -> list[K.Stmt]:
    node = group.anchor
    x, grid = node.inputs
    mode, padding = node.attrs.get("mode", "linear"), node.attrs.get("padding_mode", "zeros")
    align = bool(node.attrs.get("align_corners", 0))
    out_value = group_output(ctx, group)
    out = ctx.buf(out_value)
    sizes = x.shape[2:]
    rank = len(sizes)
    if out_value.type.numel == 0:
        return []

    def body(idx):
        n, c, pos = idx[0], idx[1], idx[2:]
        stmts: list[K.Stmt] = []
        per_dim = []
        for i, size in enumerate(sizes):
            raw = K.cast(ctx.load(grid, flat_index(grid.shape, [n] + pos +
                                                   [K.const(rank - 1 - i)])), F)
            v = (raw + _f(1)) / _f(2) * _f(size - 1) if align else \
                ((raw + _f(1)) * _f(size) - _f(1)) / _f(2)
            if mode == "nearest":
                v = K.call("round", v)
            low, high = borders(size, align)
            outside = K.binary("||", K.binary("<", v, _f(low)), K.binary(">", v, _f(high)))
            if padding == "border":
                v = _where(outside, _clamp(v, _f(0), _f(size - 1)), v)
            elif padding == "reflection":
                v = _reflect(v, low, high)
            coord = ctx.names.var(f"v{i}", F)
            stmts.append(K.Let(coord, v))
            if mode == "nearest":
                taps = [(K.cast(coord, K.INDEX), None)]
            else:
                base = ctx.names.var(f"b{i}", F)
                frac = ctx.names.var(f"f{i}", F)
                stmts += [K.Let(base, K.call("floor", coord)), K.Let(frac, coord - base)]
                weights = [_f(1) - frac, frac] if mode == "linear" else cubic_weights(frac)
                first = 0 if mode == "linear" else -1
                taps = [(K.cast(base, K.INDEX) + (first + t), w) for t, w in enumerate(weights)]
            per_dim.append((taps, size, low, high))
        total = ctx.names.var("acc", F)
        stmts.append(K.Let(total, _f(0)))
        for combo in itertools.product(*[d[0] for d in per_dim]):
            index, valid, weight = [], [], None
            for (tap, w), (_, size, low, high) in zip(combo, per_dim):
                if w is not None:
                    weight = w if weight is None else weight * w
                if padding == "zeros":
                    valid += [K.binary(">=", tap, 0), K.binary("<", tap, size)]
                    tap = _clamp(tap, 0, size - 1)
                elif padding == "border":
                    tap = _clamp(tap, 0, size - 1)
                else:
                    tap = _clamp(K.cast(_reflect(K.cast(tap, F), low, high), K.INDEX), 0,
                                 size - 1)
                index.append(tap)
            value = K.cast(ctx.load(x, flat_index(x.shape, [n, c] + index)), F)
            if weight is not None:
                value = value * weight
            if valid:
                value = _where(K.all_of(valid), value, _f(0))
            stmts.append(K.Assign(total, total + value))
        stmts.append(K.Store(out, flat_index(out_value.shape, idx), K.cast(total, x.dtype)))
        return stmts

    return loops_over(ctx, list(out_value.shape), body, schedule.chunk)


def lower_resample(ctx: LowerContext, group: FusedGroup, schedule: LoopSchedule
                   ) -> list[K.Stmt]:
    """Each output element sums, over the taps of every resized axis (nested loops), the
    product of the axes' weights times the input at the axes' tap positions: one pass over
    the output, no intermediate per axis. Nearest reads its one tap."""
    node = group.anchor
    x, tables = node.inputs[0], node.inputs[1:]
    axes, nearest = node.attrs["axes"], node.attrs["nearest"]
    out_value = group_output(ctx, group)
    out = ctx.buf(out_value)
    if out_value.type.numel == 0:
        return []
    per_axis = {axis: tables[3 * i:3 * i + 3] for i, axis in enumerate(axes)}
    extrapolated = [axis for axis, (_, _, outside) in per_axis.items() if outside.data.any()]
    acc_t = x.dtype if x.dtype in (DType.float32, DType.float64) else F

    def body(idx: list[K.Expr]) -> list[K.Stmt]:
        names = ctx.names
        if nearest:
            source = [ctx.load(per_axis[d][0], idx[d]) if d in per_axis else idx[d]
                      for d in range(len(idx))]
            value: K.Expr = ctx.load(x, flat_index(x.shape, source))
            stmts: list[K.Stmt] = []
        else:
            total = names.var("acc", acc_t)
            taps = {axis: names.var(f"t{axis}") for axis in axes}
            source, weight = [], None
            for d in range(len(idx)):
                if d not in per_axis:
                    source.append(idx[d])
                    continue
                indices, weights, _ = per_axis[d]
                at = idx[d] * indices.shape[1] + taps[d]
                source.append(ctx.load(indices, at))
                w = K.cast(ctx.load(weights, at), acc_t)
                weight = w if weight is None else weight * w
            term = K.cast(ctx.load(x, flat_index(x.shape, source)), acc_t) * weight
            inner: list[K.Stmt] = [K.Assign(total, total + term)]
            for axis in reversed(axes):
                inner = [K.For(taps[axis], K.const(0), K.const(per_axis[axis][0].shape[1]),
                               inner)]
            stmts = [K.Let(total, K.const(0.0, acc_t))] + inner
            value = K.cast(total, x.dtype)
        if extrapolated:
            flags = [K.binary("!=", ctx.load(per_axis[d][2], idx[d]), 0) for d in extrapolated]
            outside = flags[0]
            for flag in flags[1:]:
                outside = K.binary("||", outside, flag)
            value = K.select(outside, K.const(node.attrs["fill"], x.dtype), value)
        return stmts + [K.Store(out, flat_index(out_value.shape, idx), value)]

    return loops_over(ctx, list(out_value.shape), body, schedule.chunk)
