"""Recurrent ONNX ops: LSTM, GRU and RNN, each one IR op that loops over time.

The input projection of every step is one matmul computed up front, for all directions at
once (X @ [W_0; W_1]^T + the biases that add outside the cell); then one `lstm`, `gru` or
`rnn` op (compiler/ops/recurrent.py) runs the recurrence itself, H @ R^T and the gates, as a
serial loop over time in one kernel, so the graph and the generated code do not grow with
the sequence. That op writes Y and the final states as one tensor; Y, Y_h and Y_c are
slices of it. Directions forward, reverse and bidirectional; layout 0 and 1 (opset 14);
`clip`, LSTM peepholes and input_forget, GRU linear_before_reset; sequence_lens per batch
element (a constant or a run-time input); activations Sigmoid, Tanh and Relu.

The converters take two keywords for contrib ops whose weights arrive in another form
(com.microsoft DynamicQuantizeLSTM): `project(ctx, x, w)` computes the input projection
[seq, batch, dirs * G * H] (or [seq * batch, ...]: any shape with that row-major layout)
from the time-major input x [seq, batch, input] and the node's `w`, whatever its form (by
default a matmul by W^T; W's shape is then the caller's to check), and `r_t` gives
R^T [dirs, H, G * H] as a float value (by default transposed from R). The product by R runs
inside the loop kernel, in float32.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ....compiler.ir import Value
from ....compiler.ops.recurrent import GATES, STATES
from ..registry import converter
from .common import reshape

_ACTIVATIONS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu"}

#: (ctx, x [seq, batch, input], w) -> the input projection [seq, batch, dirs * G * H]
Project = Callable[[Any, Value, Value], Value]


def _slice(ctx, x, axis: int, start: int, end: int):
    starts = tuple(start if a == axis else 0 for a in range(x.type.rank))
    ends = tuple(end if a == axis else d for a, d in enumerate(x.shape))
    if start == 0 and end == x.shape[axis]:
        return x
    return ctx.emit("slice", [x], starts=starts, ends=ends, steps=(1,) * x.type.rank)


def project_by_matmul(ctx, x: Value, w: Value) -> Value:
    """X @ W^T for every step and direction at once: W [dirs, G*H, input] as
    [input, dirs * G*H]."""
    dirs, width, size = w.shape
    w_t = reshape(ctx, ctx.emit("transpose", [w], perm=(2, 0, 1)), (size, dirs * width))
    return ctx.emit("matmul", [x, w_t])


def _activations(ctx, names, count: int, directions: int) -> tuple[str, ...] | None:
    """The IR activation names, `count` per direction (the spec lists them direction after
    direction); None for the defaults."""
    if names is None:
        return None
    names = [n.lower() for n in names]
    if len(names) != count * directions:
        ctx.fail(f"expected {count * directions} activations, got {len(names)}")
    for name in names:
        if name not in _ACTIVATIONS:
            ctx.fail(f"recurrent activation '{name}' is not supported",
                     "use Sigmoid, Tanh or Relu")
    return tuple(_ACTIVATIONS[n] for n in names)


class _Recurrence:
    """What LSTM, GRU and RNN share: time-major input, its projection, R^T, the states,
    sequence_lens, and Y and the final states sliced out of the op's one result."""

    def __init__(self, ctx, op: str, x, w, r, sequence_lens, hidden_size, direction: str,
                 layout: int, project: Project | None = None, r_t: Value | None = None):
        if direction not in ("forward", "reverse", "bidirectional"):
            ctx.fail(f"direction '{direction}' is not forward, reverse or bidirectional")
        self.ctx, self.op = ctx, op
        gates = GATES[op]
        if x.type.rank != 3 or w.type.rank != 3:
            ctx.fail(f"X and W must have rank 3, not {x.type.rank} and {w.type.rank}")
        self.directions = 2 if direction == "bidirectional" else 1
        self.direction = direction
        self.layout = int(layout)
        if self.layout:
            x = ctx.emit("transpose", [x], perm=(1, 0, 2))
        self.seq, self.batch, self.input_size = x.shape
        self.hidden = int(hidden_size) if hidden_size else w.shape[1] // gates
        self.width = gates * self.hidden
        if project is None and w.shape != (self.directions, self.width, self.input_size):
            ctx.fail(f"W has shape {list(w.shape)}, expected "
                     f"{[self.directions, self.width, self.input_size]}")
        if r_t is None:
            if r.shape != (self.directions, self.width, self.hidden):
                ctx.fail(f"R has shape {list(r.shape)}, expected "
                         f"{[self.directions, self.width, self.hidden]}")
            r_t = ctx.emit("transpose", [r], perm=(0, 2, 1))
        self.x, self.w, self.r_t = x, w, r_t
        self.project = project or project_by_matmul
        self.lens = self._lengths(sequence_lens)

    def _lengths(self, sequence_lens) -> Value | None:
        """sequence_lens, or None when absent or known to be the whole sequence."""
        ctx = self.ctx
        if sequence_lens is None:
            return None
        if sequence_lens.shape != (self.batch,) or not sequence_lens.dtype.is_int:
            ctx.fail(f"sequence_lens must be {self.batch} integers (one per batch element), "
                     f"not {sequence_lens.type}")
        if sequence_lens.is_constant:
            lens = np.asarray(sequence_lens.data)
            if np.any(lens < 0) or np.any(lens > self.seq):
                ctx.fail(f"sequence_lens {lens.tolist()} are not within [0, {self.seq}]")
            if np.all(lens == self.seq):
                return None
        return sequence_lens

    def biases(self, b) -> tuple[Value | None, Value | None]:
        """(Wb, Rb), each [dirs, G*H], or (None, None) when the node has no B."""
        if b is None:
            return None, None
        ctx = self.ctx
        if b.shape != (self.directions, 2 * self.width):
            ctx.fail(f"B has shape {list(b.shape)}, expected "
                     f"{[self.directions, 2 * self.width]}")
        return _slice(ctx, b, 1, 0, self.width), _slice(ctx, b, 1, self.width, 2 * self.width)

    def projected_inputs(self, bias: Value | None) -> Value:
        """X @ W^T (+ bias) for every step and direction: [seq, batch, dirs * G*H]."""
        ctx = self.ctx
        xw = self.project(ctx, self.x, self.w)
        if bias is not None:
            xw = ctx.emit("add", [xw, reshape(ctx, bias, (self.directions * self.width,))])
        return xw

    def state(self, value, what: str) -> Value:
        """An initial state as [dirs, batch, hidden] (zeros when not given)."""
        ctx = self.ctx
        shape = (self.directions, self.batch, self.hidden)
        if value is None:
            return ctx.const(np.zeros(shape, np.float32), name=f"{ctx.name}_{what}")
        if self.layout:
            value = ctx.emit("transpose", [value], perm=(1, 0, 2))
        if value.shape != shape:
            ctx.fail(f"{what} has shape {list(value.shape)}, expected {list(shape)} "
                     f"(directions, batch, hidden)")
        return value

    def run(self, inputs: list[Value], **attrs: Any) -> list[Value]:
        """Emit the op on xw, R^T, the states and `inputs`; Y and each final state, in the
        node's layout."""
        ctx, h = self.ctx, self.hidden
        lens = [] if self.lens is None else [self.lens]
        packed = ctx.emit(self.op, [*inputs, *lens], seq=self.seq, hidden=h,
                          direction=self.direction, lens=self.lens is not None, **attrs)
        y = _slice(ctx, packed, 0, 0, self.seq)
        states = [reshape(ctx, _slice(ctx, packed, 0, self.seq + i, self.seq + i + 1),
                          (self.directions, self.batch, h)) for i in range(STATES[self.op])]
        if self.layout:
            y = ctx.emit("transpose", [y], perm=(2, 0, 1, 3))
            states = [ctx.emit("transpose", [s], perm=(1, 0, 2)) for s in states]
        return [y, *states]


def _clip_attr(clip) -> float | None:
    return None if clip is None else float(clip)


def _sum(ctx, a: Value | None, b: Value | None) -> Value | None:
    if a is None or b is None:
        return a if b is None else b
    return ctx.emit("add", [a, b])


@converter("LSTM", since=7)
def lstm(ctx, x, w, r, b=None, sequence_lens=None, initial_h=None, initial_c=None, p=None,
         activation_alpha=None, activation_beta=None, activations=None, clip=None,
         direction="forward", hidden_size=None, input_forget=0, layout=0, *,
         project: Project | None = None, r_t: Value | None = None):
    rec = _Recurrence(ctx, "lstm", x, w, r, sequence_lens, hidden_size, direction, layout,
                      project, r_t)
    wb, rb = rec.biases(b)
    inputs = [rec.projected_inputs(_sum(ctx, wb, rb)), rec.r_t,
              rec.state(initial_h, "initial_h"), rec.state(initial_c, "initial_c")]
    if p is not None:
        if p.shape != (rec.directions, 3 * rec.hidden):
            ctx.fail(f"P has shape {list(p.shape)}, expected {[rec.directions, 3 * rec.hidden]}")
        inputs.append(p)
    return rec.run(inputs, activations=_activations(ctx, activations, 3, rec.directions),
                   clip=_clip_attr(clip), input_forget=int(input_forget),
                   peepholes=p is not None)


@converter("GRU", since=7)
def gru(ctx, x, w, r, b=None, sequence_lens=None, initial_h=None, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward",
        hidden_size=None, linear_before_reset=0, layout=0, *,
        project: Project | None = None, r_t: Value | None = None):
    rec = _Recurrence(ctx, "gru", x, w, r, sequence_lens, hidden_size, direction, layout,
                      project, r_t)
    h, lbr = rec.hidden, int(linear_before_reset)
    wb, rb = rec.biases(b)
    outside = rb
    if rb is not None and lbr:   # the candidate's Rb is inside the reset product
        keep = np.ones((1, rec.width), np.float32)
        keep[0, 2 * h:] = 0.0
        outside = ctx.emit("mul", [rb, ctx.const(keep, name=f"{ctx.name}_outside")])
    inputs = [rec.projected_inputs(_sum(ctx, wb, outside)), rec.r_t,
              rec.state(initial_h, "initial_h")]
    if lbr:
        inputs.append(_slice(ctx, rb, 1, 2 * h, 3 * h) if rb is not None else
                      ctx.const(np.zeros((rec.directions, h), np.float32),
                                name=f"{ctx.name}_rb"))
    return rec.run(inputs, activations=_activations(ctx, activations, 2, rec.directions),
                   clip=_clip_attr(clip), linear_before_reset=lbr)


@converter("RNN", since=7)
def rnn(ctx, x, w, r, b=None, sequence_lens=None, initial_h=None, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward",
        hidden_size=None, layout=0, *, project: Project | None = None,
        r_t: Value | None = None):
    rec = _Recurrence(ctx, "rnn", x, w, r, sequence_lens, hidden_size, direction, layout,
                      project, r_t)
    wb, rb = rec.biases(b)
    inputs = [rec.projected_inputs(_sum(ctx, wb, rb)), rec.r_t,
              rec.state(initial_h, "initial_h")]
    return rec.run(inputs, activations=_activations(ctx, activations, 1, rec.directions),
                   clip=_clip_attr(clip))
