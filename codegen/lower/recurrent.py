"""LSTM, GRU and RNN (compiler/ops/recurrent.py) as one kernel: a serial loop over time.

One task per (direction, batch element); its states live on its stack:

    h[:] = h0[d, b]  (c[:] = c0[d, b])          n = sequence_lens[b] clamped to [0, seq]
    out[t, d, b, :] = 0 for t in [n, seq)
    for s in [0, n):                             serial: step s needs step s - 1
        t = s, or n - 1 - s running backwards
        prod[:] = sum_k h[k] * R_d^T[k, :]       blocks of vecs x lanes gate columns, their
                                                 accumulators in registers over k
        gates from xw[t, b, d] + prod, a vector of hidden units at a time: h, c updated in
        place, out[t, d, b, :] = h
    out[seq, d, b, :] = h  (out[seq + 1, d, b, :] = c)

The code is the same for every sequence length (n is a loop bound, not an unroll count).
GRU without linear_before_reset needs (r * h) @ R_h^T: a second product over the
candidate's columns after the reset gate, before the update. The activations use no libm:
sigmoid is 1 / (1 + exp(-x)) and tanh 1 - 2 / (1 + exp(2x)) with Kiln's polynomial exp
(lower/vector_math.py), tanh by its odd series near 0; columns and units past the last
whole vector run the same arithmetic on scalars. Without vectors (vector_bits 0) everything
runs on scalars.
"""

from __future__ import annotations

from typing import Callable

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup, Value
from ...compiler.ops.recurrent import DEFAULT_ACTIVATIONS, GATES, directions, input_names
from .. import kernel_ir as K
from ..schedules import RecurrenceSchedule
from .common import LowerContext, group_output
from .vector_math import vector_call

F32 = DType.float32
#: floats of stack one task's states and gate products may take
STACK_FLOATS = 64 * 1024
#: below this |x|, tanh is x (1 - x^2/3 + 2x^4/15 - 17x^6/315): 1 - 2 / (1 + e^2x) would
#: lose digits to cancellation
_TANH_SERIES = 0.0625


def stack_floats(op: str, hidden: int) -> int:
    """Floats of stack one task uses: h, c or r * h, and one product per gate column."""
    return 2 * hidden + GATES[op] * hidden


class _Lanes:
    """Arithmetic on `lanes` consecutive float32s (1: scalars), so the vector body and its
    scalar tail are one piece of code."""

    def __init__(self, ctx: LowerContext, lanes: int):
        self.ctx, self.lanes = ctx, lanes

    def const(self, value: float) -> K.Expr:
        c = K.const(value, F32)
        return c if self.lanes == 1 else K.Broadcast(c, self.lanes)

    def load(self, buffer: K.Buffer, index: K.Expr) -> K.Expr:
        return K.Load(buffer, index) if self.lanes == 1 else K.VecLoad(buffer, index,
                                                                       self.lanes)

    def read(self, value: Value, index: K.Expr) -> K.Expr:
        return self.load(self.ctx.buf(value), index)

    def store(self, buffer: K.Buffer, index: K.Expr, value: K.Expr) -> K.Stmt:
        return K.Store(buffer, index, value) if self.lanes == 1 else \
            K.VecStore(buffer, index, value, self.lanes)

    def let(self, hint: str, value: K.Expr, into: list[K.Stmt]) -> K.Expr:
        name = self.ctx.names.var(hint, F32)
        var = name if self.lanes == 1 else K.VecVar(name.name, self.lanes)
        into.append(K.Let(var, value))
        return var

    def select(self, op: str, a: K.Expr, b: K.Expr, then: K.Expr, other: K.Expr) -> K.Expr:
        return K.Select(K.Binary(op, a, b, DType.bool), then, other, F32)

    def exp(self, x: K.Expr) -> K.Expr:
        return K.call("exp_poly", x) if self.lanes == 1 else vector_call("exp_poly", x)

    def neg(self, x: K.Expr) -> K.Expr:
        return K.Unary("-", x, F32)

    def activation(self, name: str, x: K.Expr, into: list[K.Stmt]) -> K.Expr:
        one = self.const(1.0)
        if name == "sigmoid":
            return one / (one + self.exp(self.neg(x)))
        if name == "relu":
            return self.select("<", x, self.const(0.0), self.const(0.0), x)
        x = self.let("x", x, into)
        size = self.let("ax", self.select("<", x, self.const(0.0), self.neg(x), x), into)
        far = self.let("far", one - self.const(2.0) / (one + self.exp(self.const(2.0) * size)),
                       into)
        x2 = self.let("x2", x * x, into)
        series = x * (one + x2 * (self.const(-1 / 3) + x2 * (self.const(2 / 15)
                                                              - x2 * self.const(17 / 315))))
        signed = self.select("<", x, self.const(0.0), self.neg(far), far)
        return self.select("<", size, self.const(_TANH_SERIES), series, signed)

    def clip(self, x: K.Expr, bound: float) -> K.Expr:
        low, high = self.const(-bound), self.const(bound)
        x = self.select("<", x, low, low, x)
        return self.select(">", x, high, high, x)


class _Cell:
    """Index arithmetic and loads of one task (direction d, batch element b)."""

    def __init__(self, ctx: LowerContext, group: FusedGroup, d: K.Expr, b: K.Expr):
        node = group.anchor
        self.ctx, self.node, self.attrs = ctx, node, node.attrs
        self.inputs: dict[str, Value] = dict(zip(input_names(node.op, node.attrs),
                                                 node.inputs))
        self.seq, self.batch = node.attrs["seq"], self.inputs["h0"].shape[1]
        self.hidden = node.attrs["hidden"]
        self.width = GATES[node.op] * self.hidden
        self.dirs = len(directions(node.attrs["direction"]))
        self.d, self.b = d, b
        self.out = ctx.buf(group_output(ctx, group))
        self.clip = node.attrs.get("clip")
        self.lanes = ctx.storage.lanes if ctx.storage.vector_bits else 1

    def local(self, hint: str, numel: int) -> K.Buffer:
        buf = K.Buffer(self.ctx.names.var(hint).name, F32, numel, "local")
        self.ctx.buffers[id(buf)] = buf
        return buf

    def state_at(self, j: K.Expr) -> K.Expr:
        """Offset of unit j of this task's row in h0 / c0 [dirs, batch, H]."""
        return (self.d * self.batch + self.b) * self.hidden + j

    def out_at(self, row: K.Expr, j: K.Expr) -> K.Expr:
        return ((row * self.dirs + self.d) * self.batch + self.b) * self.hidden + j

    def projected(self, m: _Lanes, t: K.Expr, gate: int, j: K.Expr) -> K.Expr:
        """xw[t, b, d, gate, j...]: step t's input projection for units of a gate."""
        return m.read(self.inputs["xw"], (t * self.batch + self.b) * (self.dirs * self.width)
                      + self.d * self.width + gate * self.hidden + j)

    def pre(self, m: _Lanes, t: K.Expr, prod: K.Buffer, gate: int, j: K.Expr) -> K.Expr:
        """xw + prod at units j... of a gate: its input before the activation."""
        return self.projected(m, t, gate, j) + m.load(prod, gate * self.hidden + j)

    def act(self, m: _Lanes, name: str, x: K.Expr, into: list[K.Stmt]) -> K.Expr:
        if self.clip is not None:
            x = m.clip(x, self.clip)
        return m.activation(name, x, into)

    def product(self, source: K.Buffer, prod: K.Buffer, first: int, last: int,
                vecs: int) -> list[K.Stmt]:
        """prod[first:last] = sum_k source[k] * R_d^T[k, first:last]: blocks of vecs x lanes
        columns, then single vectors, then single columns, each block's sums in registers."""
        stmts: list[K.Stmt] = []
        start = first
        for lanes, count in ((self.lanes, vecs), (self.lanes, 1), (1, 1)):
            blocks = (last - start) // (lanes * count)
            if blocks:
                stmts += self._block_product(source, prod, start, blocks,
                                             _Lanes(self.ctx, lanes), count)
                start += blocks * lanes * count
        return stmts

    def _block_product(self, source: K.Buffer, prod: K.Buffer, start: int, blocks: int,
                       m: _Lanes, count: int) -> list[K.Stmt]:
        """`blocks` blocks of `count` x m.lanes columns from column `start`."""
        names = self.ctx.names
        cb, k = names.var("cb"), names.var("k")
        step = m.lanes * count
        init: list[K.Stmt] = []
        accs = [m.let("acc", m.const(0.0), init) for _ in range(count)]
        inner: list[K.Stmt] = []
        splat = K.Load(source, k) if m.lanes == 1 else K.Broadcast(K.Load(source, k), m.lanes)
        hk = m.let("hk", splat, inner)
        row = (self.d * self.hidden + k) * self.width + start + cb * step
        inner += [K.Assign(acc, K.fma(acc, hk, m.read(self.inputs["r_t"], row + v * m.lanes)))
                  for v, acc in enumerate(accs)]
        stores = [m.store(prod, start + cb * step + v * m.lanes, acc)
                  for v, acc in enumerate(accs)]
        return [K.For(cb, K.const(0), K.const(blocks), [
            *init, K.For(k, K.const(0), K.const(self.hidden), inner), *stores])]

    def units(self, body: Callable[[_Lanes, K.Expr], list[K.Stmt]]) -> list[K.Stmt]:
        """body over the hidden units: whole vectors, then the rest one by one."""
        names = self.ctx.names
        stmts: list[K.Stmt] = []
        whole = self.hidden // self.lanes * self.lanes if self.lanes > 1 else 0
        if whole:
            jb = names.var("jb")
            stmts.append(K.For(jb, K.const(0), K.const(whole // self.lanes),
                               body(_Lanes(self.ctx, self.lanes), jb * self.lanes)))
        if whole < self.hidden:
            j = names.var("j")
            stmts.append(K.For(j, K.const(whole), K.const(self.hidden),
                               body(_Lanes(self.ctx, 1), j)))
        return stmts


def _lstm_step(cell: _Cell, acts: tuple[str, ...], t: K.Expr, prod: K.Buffer,
               h: K.Buffer, c: K.Buffer, vecs: int) -> list[K.Stmt]:
    f_act, g_act, h_act = acts
    peep = "p" in cell.inputs
    forget_from_input = cell.attrs.get("input_forget")
    units = cell.hidden

    def body(m: _Lanes, j: K.Expr) -> list[K.Stmt]:
        stmts: list[K.Stmt] = []
        c_prev = m.let("cp", m.load(c, j), stmts)
        i_pre, o_pre, f_pre, c_pre = (cell.pre(m, t, prod, g, j) for g in range(4))
        if peep:
            base = cell.d * (3 * units) + j
            i_pre = i_pre + m.read(cell.inputs["p"], base) * c_prev
            f_pre = f_pre + m.read(cell.inputs["p"], base + 2 * units) * c_prev
        i = m.let("ig", cell.act(m, f_act, i_pre, stmts), stmts)
        f = m.const(1.0) - i if forget_from_input else cell.act(m, f_act, f_pre, stmts)
        g = m.let("gg", cell.act(m, g_act, c_pre, stmts), stmts)
        c_new = m.let("cn", f * c_prev + i * g, stmts)
        if peep:
            o_pre = o_pre + m.read(cell.inputs["p"], cell.d * (3 * units) + units + j) * c_new
        o = m.let("og", cell.act(m, f_act, o_pre, stmts), stmts)
        h_new = m.let("hn", o * m.activation(h_act, c_new, stmts), stmts)
        return stmts + [m.store(c, j, c_new), m.store(h, j, h_new),
                        m.store(cell.out, cell.out_at(t, j), h_new)]

    return cell.product(h, prod, 0, cell.width, vecs) + cell.units(body)


def _gru_step(cell: _Cell, acts: tuple[str, ...], t: K.Expr, prod: K.Buffer,
              h: K.Buffer, rh: K.Buffer, vecs: int) -> list[K.Stmt]:
    f_act, g_act = acts
    units = cell.hidden

    def update(m: _Lanes, j: K.Expr, candidate: K.Expr, stmts: list[K.Stmt]) -> list[K.Stmt]:
        z = m.let("zg", cell.act(m, f_act, cell.pre(m, t, prod, 0, j), stmts), stmts)
        hh = m.let("hh", cell.act(m, g_act, candidate, stmts), stmts)
        h_new = m.let("hn", (m.const(1.0) - z) * hh + z * m.load(h, j), stmts)
        return stmts + [m.store(h, j, h_new), m.store(cell.out, cell.out_at(t, j), h_new)]

    def reset(m: _Lanes, j: K.Expr, stmts: list[K.Stmt]) -> K.Expr:
        return m.let("rg", cell.act(m, f_act, cell.pre(m, t, prod, 1, j), stmts), stmts)

    if cell.attrs.get("linear_before_reset"):
        def body(m: _Lanes, j: K.Expr) -> list[K.Stmt]:
            stmts: list[K.Stmt] = []
            r = reset(m, j, stmts)
            inner = m.load(prod, 2 * units + j) + m.read(cell.inputs["rb"], cell.d * units + j)
            return update(m, j, cell.projected(m, t, 2, j) + r * inner, stmts)

        return cell.product(h, prod, 0, cell.width, vecs) + cell.units(body)

    def reset_state(m: _Lanes, j: K.Expr) -> list[K.Stmt]:
        stmts: list[K.Stmt] = []
        r = reset(m, j, stmts)
        return stmts + [m.store(rh, j, r * m.load(h, j))]

    return (cell.product(h, prod, 0, 2 * units, vecs) + cell.units(reset_state)
            + cell.product(rh, prod, 2 * units, 3 * units, vecs)
            + cell.units(lambda m, j: update(m, j, cell.pre(m, t, prod, 2, j), [])))


def _rnn_step(cell: _Cell, acts: tuple[str, ...], t: K.Expr, prod: K.Buffer,
              h: K.Buffer, vecs: int) -> list[K.Stmt]:
    (act,) = acts

    def body(m: _Lanes, j: K.Expr) -> list[K.Stmt]:
        stmts: list[K.Stmt] = []
        h_new = m.let("hn", cell.act(m, act, cell.pre(m, t, prod, 0, j), stmts), stmts)
        return stmts + [m.store(h, j, h_new), m.store(cell.out, cell.out_at(t, j), h_new)]

    return cell.product(h, prod, 0, cell.width, vecs) + cell.units(body)


def lower_recurrence(ctx: LowerContext, group: FusedGroup, schedule: RecurrenceSchedule
                     ) -> list[K.Stmt]:
    """The whole recurrence: tasks of (direction, batch element), each a loop over time."""
    node = group.anchor
    op = node.op
    names = ctx.names
    task = names.var("task")
    seq, batch = node.attrs["seq"], node.inputs[2].shape[1]
    cell = _Cell(ctx, group, task // batch, task % batch)
    h = cell.local("h", cell.hidden)
    second = cell.local("c" if op == "lstm" else "rh", cell.hidden)
    prod = cell.local("prod", cell.width)

    def copy(into: K.Buffer, source: str) -> Callable[[_Lanes, K.Expr], list[K.Stmt]]:
        return lambda m, j: [m.store(into, j, m.read(cell.inputs[source], cell.state_at(j)))]

    body: list[K.Stmt] = cell.units(copy(h, "h0"))
    if op == "lstm":
        body += cell.units(copy(second, "c0"))
    n: K.Expr = K.const(seq)
    if "lens" in cell.inputs:
        n = names.var("n")
        given = K.cast(ctx.load(cell.inputs["lens"], cell.b), K.INDEX)
        body.append(K.Let(n, K.minimum(K.maximum(given, K.const(0)), K.const(seq))))
        past = names.var("t")
        body.append(K.For(past, n, K.const(seq), cell.units(
            lambda m, j: [m.store(cell.out, cell.out_at(past, j), m.const(0.0))])))

    s, t = names.var("s"), names.var("t")
    backwards = directions(node.attrs["direction"])
    reverse_t = n - 1 - s
    if all(backwards):
        when: K.Expr = reverse_t
    elif any(backwards):
        when = K.select(K.binary("==", cell.d, K.const(1)), reverse_t, s)
    else:
        when = s
    count = len(DEFAULT_ACTIVATIONS[op])
    acts = node.attrs.get("activations") or DEFAULT_ACTIVATIONS[op] * len(backwards)
    per_direction = [tuple(acts[i * count:(i + 1) * count]) for i in range(len(backwards))]

    def step(chosen: tuple[str, ...]) -> list[K.Stmt]:
        if op == "lstm":
            return _lstm_step(cell, chosen, t, prod, h, second, schedule.vecs)
        if op == "gru":
            return _gru_step(cell, chosen, t, prod, h, second, schedule.vecs)
        return _rnn_step(cell, chosen, t, prod, h, schedule.vecs)

    if len(set(per_direction)) == 1:
        cell_body = step(per_direction[0])
    else:
        cell_body = [K.If(K.binary("==", cell.d, K.const(0)), step(per_direction[0]),
                          step(per_direction[1]))]
    body.append(K.For(s, K.const(0), n, [K.Let(t, when), *cell_body]))
    finals = [h, second] if op == "lstm" else [h]
    for i, state in enumerate(finals):
        body += cell.units(lambda m, j, i=i, state=state: [
            m.store(cell.out, cell.out_at(K.const(seq + i), j), m.load(state, j))])
    return [K.For(task, K.const(0), K.const(cell.dirs * batch), body, "parallel")]
