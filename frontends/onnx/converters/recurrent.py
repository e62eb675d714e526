"""Recurrent ONNX ops: LSTM, GRU and RNN, unrolled over their (static) sequence length.

Each step becomes IR matmul / elementwise ops: the input projection of every step is one
matmul (X @ W^T + biases) computed up front, then each step adds H @ R^T and applies the
gates. Weights fold to constants at compile time (W^T, R^T, summed biases). Directions
forward, reverse and bidirectional; layout 0 and 1 (opset 14); `clip`, LSTM peepholes and
input_forget; activations Sigmoid, Tanh, Relu (and their alpha/beta-free variants only).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..registry import converter
from .common import reshape, scalar

_ACTIVATIONS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu"}


def _slice(ctx, x, axis: int, start: int, end: int):
    starts = tuple(start if a == axis else 0 for a in range(x.type.rank))
    ends = tuple(end if a == axis else d for a, d in enumerate(x.shape))
    if start == 0 and end == x.shape[axis]:
        return x
    return ctx.emit("slice", [x], starts=starts, ends=ends, steps=(1,) * x.type.rank)


def _activations(ctx, names, count: int, directions: int) -> list[list[str]]:
    """Per direction, `count` IR op names (the spec lists them direction after direction)."""
    if names is None:
        return [None] * directions
    names = [n.lower() for n in names]
    if len(names) != count * directions:
        ctx.fail(f"expected {count * directions} activations, got {len(names)}")
    for name in names:
        if name not in _ACTIVATIONS:
            ctx.fail(f"recurrent activation '{name}' is not supported",
                     "use Sigmoid, Tanh or Relu")
    return [[_ACTIVATIONS[n] for n in names[d * count:(d + 1) * count]]
            for d in range(directions)]


class _Recurrence:
    """What LSTM, GRU and RNN share: inputs in time-major form, per-direction weights."""

    def __init__(self, ctx, gates: int, x, w, r, b, sequence_lens, hidden_size,
                 direction: str, layout: int, matmul: Callable | None = None):
        if direction not in ("forward", "reverse", "bidirectional"):
            ctx.fail(f"direction '{direction}' is not forward, reverse or bidirectional")
        self.ctx = ctx
        if x.type.rank != 3 or w.type.rank != 3 or r.type.rank != 3:
            ctx.fail(f"X, W and R must have rank 3, not {x.type.rank}, {w.type.rank}, "
                     f"{r.type.rank}")
        self.directions = 2 if direction == "bidirectional" else 1
        self.reverse = [False, True] if direction == "bidirectional" \
            else [direction == "reverse"]
        self.layout = int(layout)
        if self.layout:
            x = ctx.emit("transpose", [x], perm=(1, 0, 2))
        self.seq, self.batch, self.input_size = x.shape
        self.hidden = int(hidden_size) if hidden_size else w.shape[1] // gates
        self.gates = gates
        if w.shape != (self.directions, gates * self.hidden, self.input_size):
            ctx.fail(f"W has shape {list(w.shape)}, expected "
                     f"{[self.directions, gates * self.hidden, self.input_size]}")
        if sequence_lens is not None:
            lens = ctx.value_of(sequence_lens, "sequence_lens")
            if np.any(np.asarray(lens) != self.seq):
                ctx.fail("sequence_lens shorter than the sequence are not supported",
                         "pad or trim the sequences to one length")
        self.x = x
        self.w, self.r, self.b = w, r, b
        #: matmul(a, weight_t, role "W" or "R", direction) -> a @ weight_t
        self.matmul = matmul or (lambda a, weight_t, role, d: ctx.emit("matmul", [a, weight_t]))

    def weights(self, d: int):
        """(W_d^T [I, G*H], R_d^T [H, G*H], Wb_d [G*H], Rb_d [G*H] or None when no B)."""
        ctx, gh = self.ctx, self.gates * self.hidden
        w_t = ctx.emit("transpose", [reshape(ctx, _slice(ctx, self.w, 0, d, d + 1),
                                             (gh, self.input_size))], perm=(1, 0))
        r_t = ctx.emit("transpose", [reshape(ctx, _slice(ctx, self.r, 0, d, d + 1),
                                             (gh, self.hidden))], perm=(1, 0))
        if self.b is None:
            return w_t, r_t, None, None
        b = reshape(ctx, _slice(ctx, self.b, 0, d, d + 1), (2 * gh,))
        return w_t, r_t, _slice(ctx, b, 0, 0, gh), _slice(ctx, b, 0, gh, 2 * gh)

    def projected_inputs(self, w_t, bias, d: int = 0):
        """X @ W^T (+ bias) for every step at once: [seq, batch, G*H]."""
        ctx = self.ctx
        flat = reshape(ctx, self.x, (self.seq * self.batch, self.input_size))
        xw = self.matmul(flat, w_t, "W", d)
        if bias is not None:
            xw = ctx.emit("add", [xw, bias])
        return reshape(ctx, xw, (self.seq, self.batch, self.gates * self.hidden))

    def state(self, value, d: int, name: str):
        """The initial state of direction d: [batch, hidden] (zeros when not given)."""
        ctx = self.ctx
        if value is None:
            return ctx.const(np.zeros((self.batch, self.hidden), np.float32), name=name)
        return reshape(ctx, _slice(ctx, value, 0, d, d + 1), (self.batch, self.hidden))

    def step_input(self, xw, t: int):
        return reshape(self.ctx, _slice(self.ctx, xw, 0, t, t + 1),
                       (self.batch, self.gates * self.hidden))

    def gate(self, z, k: int):
        return _slice(self.ctx, z, 1, k * self.hidden, (k + 1) * self.hidden)

    def outputs(self, per_direction: list[list], finals: list[list]):
        """Y [seq, dirs, batch, H] (or batch-major for layout 1) and each final state."""
        ctx, h = self.ctx, self.hidden
        ys = []
        for steps in per_direction:
            stacked = ctx.emit("concat", [reshape(ctx, s, (1, 1, self.batch, h)) for s in steps],
                               axis=0) if len(steps) > 1 else \
                reshape(ctx, steps[0], (1, 1, self.batch, h))
            ys.append(stacked)
        y = ys[0] if len(ys) == 1 else ctx.emit("concat", ys, axis=1)
        states = []
        for values in finals:
            parts = [reshape(ctx, v, (1, self.batch, h)) for v in values]
            states.append(parts[0] if len(parts) == 1 else ctx.emit("concat", parts, axis=0))
        if self.layout:
            y = ctx.emit("transpose", [y], perm=(2, 0, 1, 3))
            states = [ctx.emit("transpose", [s], perm=(1, 0, 2)) for s in states]
        return [y, *states]

    def run(self, step: Callable, states: list, fold_recurrent_bias: bool = True
            ) -> tuple[list, list]:
        """Unroll `step(d, r_t, rb, xw_t, states) -> states` over directions and steps.

        fold_recurrent_bias: add Rb into the input projection (rb is then passed as None).
        """
        per_direction, finals = [], [[] for _ in states]
        for d in range(self.directions):
            w_t, r_t, wb, rb = self.weights(d)
            bias = wb
            if rb is not None and fold_recurrent_bias:
                bias, rb = self.ctx.emit("add", [wb, rb]), None
            xw = self.projected_inputs(w_t, bias, d)
            current = [self.state(s, d, f"{self.ctx.name}_init{i}") for i, s in enumerate(states)]
            outputs = [None] * self.seq
            order = range(self.seq - 1, -1, -1) if self.reverse[d] else range(self.seq)
            for t in order:
                current = step(d, r_t, rb, self.step_input(xw, t), current)
                outputs[t] = current[0]
            per_direction.append(outputs)
            for i, value in enumerate(current):
                finals[i].append(value)
        return per_direction, finals


def _clip(ctx, x, clip):
    if clip is None:
        return x
    return ctx.emit("clip", [x], min=-float(clip), max=float(clip))


@converter("LSTM", since=7)
def lstm(ctx, x, w, r, b=None, sequence_lens=None, initial_h=None, initial_c=None, p=None,
         activation_alpha=None, activation_beta=None, activations=None, clip=None,
         direction="forward", hidden_size=None, input_forget=0, layout=0, matmul=None):
    """matmul: how the products by W^T and R^T are computed (the _Recurrence hook; a
    quantized LSTM passes its integer matmul)."""
    rec = _Recurrence(ctx, 4, x, w, r, b, sequence_lens, hidden_size, direction, layout,
                      matmul)
    acts = _activations(ctx, activations, 3, rec.directions)
    h = rec.hidden

    def step(d, r_t, rb, xw_t, states):
        f_act, g_act, h_act = acts[d] or ("sigmoid", "tanh", "tanh")
        h_prev, c_prev = states
        z = ctx.emit("add", [xw_t, rec.matmul(h_prev, r_t, "R", d)])
        i_pre, o_pre, f_pre, c_pre = (rec.gate(z, k) for k in range(4))
        if p is not None:
            peep = reshape(ctx, _slice(ctx, p, 0, d, d + 1), (3 * h,))
            p_i, p_o, p_f = (_slice(ctx, peep, 0, k * h, (k + 1) * h) for k in range(3))
            i_pre = ctx.emit("add", [i_pre, ctx.emit("mul", [p_i, c_prev])])
            f_pre = ctx.emit("add", [f_pre, ctx.emit("mul", [p_f, c_prev])])
        i = ctx.emit(f_act, [_clip(ctx, i_pre, clip)])
        if input_forget:
            f = ctx.emit("sub", [scalar(ctx, 1.0, i), i])
        else:
            f = ctx.emit(f_act, [_clip(ctx, f_pre, clip)])
        g = ctx.emit(g_act, [_clip(ctx, c_pre, clip)])
        c = ctx.emit("add", [ctx.emit("mul", [f, c_prev]), ctx.emit("mul", [i, g])])
        if p is not None:
            o_pre = ctx.emit("add", [o_pre, ctx.emit("mul", [p_o, c])])
        o = ctx.emit(f_act, [_clip(ctx, o_pre, clip)])
        return [ctx.emit("mul", [o, ctx.emit(h_act, [c])]), c]

    per_direction, finals = rec.run(step, [initial_h, initial_c])
    return rec.outputs(per_direction, finals)


@converter("GRU", since=7)
def gru(ctx, x, w, r, b=None, sequence_lens=None, initial_h=None, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward",
        hidden_size=None, linear_before_reset=0, layout=0):
    rec = _Recurrence(ctx, 3, x, w, r, b, sequence_lens, hidden_size, direction, layout)
    acts = _activations(ctx, activations, 2, rec.directions)

    def step(d, r_t, rb, xw_t, states):
        f_act, g_act = acts[d] or ("sigmoid", "tanh")
        (h_prev,) = states
        hr = ctx.emit("matmul", [h_prev, r_t])
        if rb is not None:
            hr = ctx.emit("add", [hr, rb])
        z = ctx.emit(f_act, [_clip(ctx, ctx.emit("add", [rec.gate(xw_t, 0), rec.gate(hr, 0)]),
                                   clip)])
        r_ = ctx.emit(f_act, [_clip(ctx, ctx.emit("add", [rec.gate(xw_t, 1), rec.gate(hr, 1)]),
                                    clip)])
        if linear_before_reset:
            candidate = ctx.emit("mul", [r_, rec.gate(hr, 2)])
        else:
            r_h = _slice(ctx, r_t, 1, 2 * rec.hidden, 3 * rec.hidden)
            candidate = ctx.emit("matmul", [ctx.emit("mul", [r_, h_prev]), r_h])
            if rb is not None:
                candidate = ctx.emit("add", [candidate, _slice(ctx, rb, 0, 2 * rec.hidden,
                                                               3 * rec.hidden)])
        hh = ctx.emit(g_act, [_clip(ctx, ctx.emit("add", [rec.gate(xw_t, 2), candidate]), clip)])
        keep = ctx.emit("mul", [z, h_prev])
        new = ctx.emit("mul", [ctx.emit("sub", [scalar(ctx, 1.0, z), z]), hh])
        return [ctx.emit("add", [new, keep])]

    per_direction, finals = rec.run(step, [initial_h], fold_recurrent_bias=False)
    return rec.outputs(per_direction, finals)


@converter("RNN", since=7)
def rnn(ctx, x, w, r, b=None, sequence_lens=None, initial_h=None, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward",
        hidden_size=None, layout=0):
    rec = _Recurrence(ctx, 1, x, w, r, b, sequence_lens, hidden_size, direction, layout)
    acts = _activations(ctx, activations, 1, rec.directions)

    def step(d, r_t, rb, xw_t, states):
        (act,) = acts[d] or ("tanh",)
        z = ctx.emit("add", [xw_t, ctx.emit("matmul", [states[0], r_t])])
        return [ctx.emit(act, [_clip(ctx, z, clip)])]

    per_direction, finals = rec.run(step, [initial_h])
    return rec.outputs(per_direction, finals)
