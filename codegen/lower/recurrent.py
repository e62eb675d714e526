"""LSTM, GRU and RNN (compiler/ops/recurrent.py) as one kernel: a serial loop over time.

One task per (direction, batch element); its states live on its stack:

    h[:] = h0[d, b]  (c[:] = c0[d, b])          n = sequence_lens[b] clamped to [0, seq]
    out[t, d, b, :] = 0 for t in [n, seq)
    for s in [0, n):                             serial: step s needs step s - 1
        t = s, or n - 1 - s running backwards
        prod[:] = sum_k h[k] * R_d^T[k, :]       vectorized over the gate columns
        gates from xw[t, b, d] + prod, in one pass over the hidden units: h, c updated
        in place, out[t, d, b, :] = h
    out[seq, d, b, :] = h  (out[seq + 1, d, b, :] = c)

The code is the same for every sequence length (n is a loop bound, not an unroll count).
GRU without linear_before_reset needs (r * h) @ R_h^T: a second product over the
candidate's columns after the reset gate, before the update.
"""

from __future__ import annotations

from typing import Callable

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup, Value
from ...compiler.ops.recurrent import DEFAULT_ACTIVATIONS, GATES, directions, input_names
from .. import kernel_ir as K
from .common import LowerContext, group_output
from .scalar import scalar_expr

F32 = DType.float32
#: floats of stack one task's states and gate products may take
STACK_FLOATS = 64 * 1024


def stack_floats(op: str, hidden: int) -> int:
    """Floats of stack one task uses: h, c or r * h, and one product per gate column."""
    return 2 * hidden + GATES[op] * hidden


class _Cell:
    """Index arithmetic and loads of one task (direction d, batch element b)."""

    def __init__(self, ctx: LowerContext, group: FusedGroup, d: K.Expr, b: K.Expr):
        node = group.anchor
        self.ctx, self.node, self.attrs = ctx, node, node.attrs
        self.inputs: dict[str, Value] = dict(zip(input_names(node.op, node.attrs),
                                                 node.inputs))
        xw = self.inputs["xw"]
        self.seq, self.batch = xw.shape[0], xw.shape[1]
        self.hidden = node.attrs["hidden"]
        self.width = GATES[node.op] * self.hidden
        self.dirs = len(directions(node.attrs["direction"]))
        self.d, self.b = d, b
        self.out = ctx.buf(group_output(ctx, group))
        self.clip = node.attrs.get("clip")

    def local(self, hint: str, numel: int) -> K.Buffer:
        buf = K.Buffer(self.ctx.names.var(hint).name, F32, numel, "local")
        self.ctx.buffers[id(buf)] = buf
        return buf

    def load(self, name: str, index: K.Expr) -> K.Expr:
        return self.ctx.load(self.inputs[name], index)

    def state_at(self, j: K.Expr) -> K.Expr:
        """Offset of unit j of this task's row in h0 / c0 [dirs, batch, H]."""
        return (self.d * self.batch + self.b) * self.hidden + j

    def out_at(self, row: K.Expr, j: K.Expr) -> K.Expr:
        return ((row * self.dirs + self.d) * self.batch + self.b) * self.hidden + j

    def projected(self, t: K.Expr, gate: int, j: K.Expr) -> K.Expr:
        """xw[t, b, d, gate, j]: step t's input projection for one unit of a gate."""
        return self.load("xw", (t * self.batch + self.b) * (self.dirs * self.width)
                         + self.d * self.width + gate * self.hidden + j)

    def pre(self, t: K.Expr, prod: K.Buffer, gate: int, j: K.Expr) -> K.Expr:
        """xw[t, b, d, gate, j] + prod[gate, j]: a gate's input before its activation."""
        return self.projected(t, gate, j) + K.Load(prod, gate * self.hidden + j)

    def act(self, name: str, x: K.Expr) -> K.Expr:
        if self.clip is not None:
            x = scalar_expr("clip", [x], {"min": -self.clip, "max": self.clip}, F32)
        return scalar_expr(name, [x], {}, F32)

    def product(self, source: K.Buffer, prod: K.Buffer, first: int, last: int
                ) -> list[K.Stmt]:
        """prod[first:last] += sum_k source[k] * R_d^T[k, first:last]."""
        names = self.ctx.names
        k, j = names.var("k"), names.var("j")
        hk = names.var("hk", F32)
        row = (self.d * self.hidden + k) * self.width
        return [K.For(k, K.const(0), K.const(self.hidden), [
            K.Let(hk, K.Load(source, k)),
            K.For(j, K.const(first), K.const(last), [
                K.Store(prod, j, K.Load(prod, j) + hk * self.load("r_t", row + j))],
                "vector")])]

    def units(self, body: Callable[[K.Var], list[K.Stmt]]) -> list[K.Stmt]:
        """A vector loop over the hidden units."""
        j = self.ctx.names.var("j")
        return [K.For(j, K.const(0), K.const(self.hidden), body(j), "vector")]


def _let(cell: _Cell, hint: str, value: K.Expr, into: list[K.Stmt]) -> K.Var:
    var = cell.ctx.names.var(hint, F32)
    into.append(K.Let(var, value))
    return var


def _lstm_step(cell: _Cell, acts: tuple[str, ...], t: K.Expr, prod: K.Buffer,
               h: K.Buffer, c: K.Buffer) -> list[K.Stmt]:
    f_act, g_act, h_act = acts
    peep = "p" in cell.inputs
    forget_from_input = cell.attrs.get("input_forget")
    units = cell.hidden

    def body(j: K.Var) -> list[K.Stmt]:
        stmts: list[K.Stmt] = []
        c_prev = _let(cell, "cp", K.Load(c, j), stmts)
        i_pre, o_pre, f_pre, c_pre = (cell.pre(t, prod, g, j) for g in range(4))
        if peep:
            base = cell.d * (3 * units) + j
            i_pre = i_pre + cell.load("p", base) * c_prev
            f_pre = f_pre + cell.load("p", base + 2 * units) * c_prev
        i = _let(cell, "ig", cell.act(f_act, i_pre), stmts)
        f = K.const(1.0, F32) - i if forget_from_input else cell.act(f_act, f_pre)
        c_new = _let(cell, "cn", f * c_prev + i * cell.act(g_act, c_pre), stmts)
        if peep:
            o_pre = o_pre + cell.load("p", cell.d * (3 * units) + units + j) * c_new
        h_new = _let(cell, "hn", cell.act(f_act, o_pre) * scalar_expr(h_act, [c_new], {}, F32),
                     stmts)
        return stmts + [K.Store(c, j, c_new), K.Store(h, j, h_new),
                        K.Store(cell.out, cell.out_at(t, j), h_new)]

    return cell.product(h, prod, 0, cell.width) + cell.units(body)


def _gru_step(cell: _Cell, acts: tuple[str, ...], t: K.Expr, prod: K.Buffer,
              h: K.Buffer, rh: K.Buffer) -> list[K.Stmt]:
    f_act, g_act = acts
    units = cell.hidden
    before_reset = cell.attrs.get("linear_before_reset")

    def update(j: K.Var, candidate: K.Expr) -> list[K.Stmt]:
        stmts: list[K.Stmt] = []
        z = _let(cell, "zg", cell.act(f_act, cell.pre(t, prod, 0, j)), stmts)
        hh = _let(cell, "hh", cell.act(g_act, candidate), stmts)
        h_new = _let(cell, "hn", (K.const(1.0, F32) - z) * hh + z * K.Load(h, j), stmts)
        return stmts + [K.Store(h, j, h_new), K.Store(cell.out, cell.out_at(t, j), h_new)]

    def reset(j: K.Var) -> K.Expr:
        return cell.act(f_act, cell.pre(t, prod, 1, j))

    if before_reset:
        def body(j: K.Var) -> list[K.Stmt]:
            stmts: list[K.Stmt] = []
            r = _let(cell, "rg", reset(j), stmts)
            inner = K.Load(prod, 2 * units + j) + cell.load("rb", cell.d * units + j)
            return stmts + update(j, cell.projected(t, 2, j) + r * inner)

        return cell.product(h, prod, 0, cell.width) + cell.units(body)
    reset_state = cell.units(lambda j: [K.Store(rh, j, reset(j) * K.Load(h, j))])
    return (cell.product(h, prod, 0, 2 * units) + reset_state
            + cell.product(rh, prod, 2 * units, 3 * units)
            + cell.units(lambda j: update(j, cell.pre(t, prod, 2, j))))


def _rnn_step(cell: _Cell, acts: tuple[str, ...], t: K.Expr, prod: K.Buffer,
              h: K.Buffer) -> list[K.Stmt]:
    (act,) = acts

    def body(j: K.Var) -> list[K.Stmt]:
        stmts: list[K.Stmt] = []
        h_new = _let(cell, "hn", cell.act(act, cell.pre(t, prod, 0, j)), stmts)
        return stmts + [K.Store(h, j, h_new), K.Store(cell.out, cell.out_at(t, j), h_new)]

    return cell.product(h, prod, 0, cell.width) + cell.units(body)


def lower_recurrence(ctx: LowerContext, group: FusedGroup) -> list[K.Stmt]:
    """The whole recurrence: tasks of (direction, batch element), each a loop over time."""
    node = group.anchor
    op = node.op
    names = ctx.names
    task = names.var("task")
    xw = node.inputs[0]
    seq, batch = xw.shape[0], xw.shape[1]
    cell = _Cell(ctx, group, task // batch, task % batch)
    units = cell.hidden
    h = cell.local("h", units)
    second = cell.local("c" if op == "lstm" else "rh", units)
    prod = cell.local("prod", cell.width)

    body: list[K.Stmt] = cell.units(lambda j: [K.Store(h, j, cell.load("h0", cell.state_at(j)))])
    if op == "lstm":
        body += cell.units(lambda j: [K.Store(second, j, cell.load("c0", cell.state_at(j)))])
    n: K.Expr = K.const(seq)
    if "lens" in cell.inputs:
        n = names.var("n")
        given = K.cast(cell.load("lens", cell.b), K.INDEX)
        body.append(K.Let(n, K.minimum(K.maximum(given, K.const(0)), K.const(seq))))
        t = names.var("t")
        body.append(K.For(t, n, K.const(seq), cell.units(
            lambda j: [K.Store(cell.out, cell.out_at(t, j), K.const(0.0, F32))])))

    s = names.var("s")
    backwards = directions(node.attrs["direction"])
    t = names.var("t")
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
            return _lstm_step(cell, chosen, t, prod, h, second)
        if op == "gru":
            return _gru_step(cell, chosen, t, prod, h, second)
        return _rnn_step(cell, chosen, t, prod, h)

    col = names.var("j")
    zero = K.For(col, K.const(0), K.const(cell.width), [K.Store(prod, col, K.const(0.0, F32))],
                 "vector")
    if len(set(per_direction)) == 1:
        cell_body = step(per_direction[0])
    else:
        cell_body = [K.If(K.binary("==", cell.d, K.const(0)), step(per_direction[0]),
                          step(per_direction[1]))]
    body.append(K.For(s, K.const(0), n, [K.Let(t, when), zero, *cell_body]))
    finals = [h, second] if op == "lstm" else [h]
    for i, state in enumerate(finals):
        body += cell.units(lambda j, i=i, state=state: [
            K.Store(cell.out, cell.out_at(K.const(seq + i), j), K.Load(state, j))])
    return [K.For(task, K.const(0), K.const(cell.dirs * batch), body, "parallel")]
