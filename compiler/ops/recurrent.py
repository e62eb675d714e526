"""Recurrences as single ops: `lstm`, `gru` and `rnn`, each a serial loop over time.

The importer (frontends/onnx/converters/recurrent.py) computes the input projection of every
step up front, so each op reads (its attributes `seq` and `hidden` give the sizes)

    xw      [seq, batch, dirs * G * H]   X_t W^T + the biases that can be added outside the cell
                                         (any shape with that row-major layout: a
                                         contrib projection may write [seq * batch, ...])
    r_t     [dirs, H, G * H]             R^T of each direction
    h0      [dirs, batch, H]             initial hidden state (c0: LSTM's initial cell, same)

then, per op: LSTM `p` [dirs, 3H] (peepholes i, o, f; when `peepholes`), GRU `rb` [dirs, H]
(the recurrent bias of the candidate, inside the reset product; when linear_before_reset),
and last, when `lens`, `sequence_lens` [batch] (int32 or int64). Gates are in ONNX order
(LSTM i o f c, GRU z r h).

IR ops have one result, so each op writes one tensor of shape [seq + S, dirs, batch, H]:
rows 0..seq-1 are Y (ONNX layout 0), row seq the final hidden state and, for LSTM, row
seq + 1 the final cell state. The importer slices Y, Y_h and Y_c out of it. A batch element
whose length n is below seq runs steps 0..n-1 only (reverse: n-1 down to 0); its Y rows from
n on are zero and its final states are those of its last valid step.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..ir import TensorType
from .registry import register

#: the activations the cells accept, by IR name
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
}
#: final states each op writes after Y
STATES = {"lstm": 2, "gru": 1, "rnn": 1}
#: gates per op (G): the columns of xw and r_t are G blocks of H
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
#: activations per direction and their defaults
DEFAULT_ACTIVATIONS = {"lstm": ("sigmoid", "tanh", "tanh"), "gru": ("sigmoid", "tanh"),
                       "rnn": ("tanh",)}


def directions(direction: str) -> list[bool]:
    """Per direction, whether it runs backwards in time."""
    return [False, True] if direction == "bidirectional" else [direction == "reverse"]


def input_names(op: str, attrs: dict[str, Any]) -> list[str]:
    """The names of the op's inputs, in order (which optional ones are present)."""
    names = ["xw", "r_t", "h0"] + (["c0"] if op == "lstm" else [])
    if op == "lstm" and attrs.get("peepholes"):
        names.append("p")
    if op == "gru" and attrs.get("linear_before_reset"):
        names.append("rb")
    return names + (["lens"] if attrs.get("lens") else [])


def _type_of(op: str) -> Callable[[list[TensorType], dict[str, Any]], list[TensorType]]:
    def infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
        names = input_names(op, attrs)
        if len(types) != len(names):
            raise ValueError(f"{op} takes {len(names)} inputs ({', '.join(names)}), "
                             f"got {len(types)}")
        xw, r_t, h0 = types[:3]
        hidden, dirs = attrs["hidden"], len(directions(attrs["direction"]))
        seq, batch = attrs["seq"], h0.shape[1] if h0.rank == 3 else 0
        width = GATES[op] * hidden
        if xw.numel != seq * batch * dirs * width:
            raise ValueError(f"{op}: xw has shape {list(xw.shape)}, not the "
                             f"{seq} x {batch} x {dirs * width} elements of [seq, batch, "
                             f"dirs * {GATES[op]} * hidden]")
        expected = {"xw": xw.shape, "r_t": (dirs, hidden, width),
                    "h0": (dirs, batch, hidden), "c0": (dirs, batch, hidden),
                    "p": (dirs, 3 * hidden), "rb": (dirs, hidden), "lens": (batch,)}
        for name, t in zip(names, types):
            if tuple(t.shape) != expected[name]:
                raise ValueError(f"{op}: {name} has shape {list(t.shape)}, expected "
                                 f"{list(expected[name])}")
        return [TensorType(xw.dtype, (seq + STATES[op], dirs, batch, hidden))]

    return infer


def _clipped(x: np.ndarray, clip: float | None) -> np.ndarray:
    return x if clip is None else np.clip(x, -clip, clip)


def _recur(op: str, xw, r_t, initial: list, lens, attrs: dict[str, Any], cell) -> np.ndarray:
    """Run `cell(d, x_t, h @ R_d^T, states) -> states` over every direction and batch
    element, each up to its length; returns the op's packed result."""
    hidden = attrs["hidden"]
    backwards = directions(attrs["direction"])
    seq, batch = attrs["seq"], initial[0].shape[1]
    width = GATES[op] * hidden
    xw = xw.reshape(seq, batch, len(backwards) * width)
    out = np.zeros((seq + STATES[op], len(backwards), batch, hidden), xw.dtype)
    lengths = np.full(batch, seq) if lens is None else np.clip(lens.astype(np.int64), 0, seq)
    for d, reverse in enumerate(backwards):
        for b in range(batch):
            states = [s[d, b].astype(np.float32) for s in initial]
            n = int(lengths[b])
            for t in (range(n - 1, -1, -1) if reverse else range(n)):
                x_t = xw[t, b, d * width:(d + 1) * width]
                states = cell(d, x_t, states[0] @ r_t[d], states)
                out[t, d, b] = states[0]
            for i, state in enumerate(states):
                out[seq + i, d, b] = state
    return out


def _acts(op: str, attrs: dict[str, Any], d: int) -> list[Callable]:
    names = attrs.get("activations") or DEFAULT_ACTIVATIONS[op] * 2
    count = len(DEFAULT_ACTIVATIONS[op])
    return [ACTIVATIONS[n] for n in names[d * count:(d + 1) * count]]


@register("lstm", "recurrent", _type_of("lstm"))
def lstm(xw, r_t, h0, c0, *rest, seq, hidden, direction, activations=None, clip=None,
         input_forget=0, peepholes=False, lens=False):
    """LSTM cells over time: i, o, f, c gates from xw_t + h R^T, peepholes on c."""
    attrs = {"seq": seq, "hidden": hidden, "direction": direction, "activations": activations}
    p = rest[0] if peepholes else None
    seq_lens = rest[-1] if lens else None
    h = hidden

    def cell(d, x_t, hr, states):
        f_act, g_act, h_act = _acts("lstm", attrs, d)
        _, c_prev = states
        z = x_t + hr
        i_pre, o_pre, f_pre, c_pre = (z[k * h:(k + 1) * h] for k in range(4))
        if p is not None:
            i_pre = i_pre + p[d, :h] * c_prev
            f_pre = f_pre + p[d, 2 * h:] * c_prev
        i = f_act(_clipped(i_pre, clip))
        f = 1.0 - i if input_forget else f_act(_clipped(f_pre, clip))
        c = f * c_prev + i * g_act(_clipped(c_pre, clip))
        if p is not None:
            o_pre = o_pre + p[d, h:2 * h] * c
        o = f_act(_clipped(o_pre, clip))
        return [o * h_act(c), c]

    return _recur("lstm", xw, r_t, [h0, c0], seq_lens, attrs, cell)


@register("gru", "recurrent", _type_of("gru"))
def gru(xw, r_t, h0, *rest, seq, hidden, direction, activations=None, clip=None,
        linear_before_reset=0, lens=False):
    """GRU cells over time: z, r gates, then the candidate from the reset state."""
    attrs = {"seq": seq, "hidden": hidden, "direction": direction, "activations": activations}
    rb = rest[0] if linear_before_reset else None
    seq_lens = rest[-1] if lens else None
    h = hidden

    def cell(d, x_t, hr, states):
        f_act, g_act = _acts("gru", attrs, d)
        (h_prev,) = states
        z = f_act(_clipped(x_t[:h] + hr[:h], clip))
        r = f_act(_clipped(x_t[h:2 * h] + hr[h:2 * h], clip))
        if rb is not None:
            candidate = r * (hr[2 * h:] + rb[d])
        else:
            candidate = (r * h_prev) @ r_t[d][:, 2 * h:]
        hh = g_act(_clipped(x_t[2 * h:] + candidate, clip))
        return [(1.0 - z) * hh + z * h_prev]

    return _recur("gru", xw, r_t, [h0], seq_lens, attrs, cell)


@register("rnn", "recurrent", _type_of("rnn"))
def rnn(xw, r_t, h0, *rest, seq, hidden, direction, activations=None, clip=None, lens=False):
    """Simple RNN cells over time: h = f(xw_t + h R^T)."""
    attrs = {"seq": seq, "hidden": hidden, "direction": direction, "activations": activations}
    seq_lens = rest[-1] if lens else None

    def cell(d, x_t, hr, states):
        (act,) = _acts("rnn", attrs, d)
        return [act(_clipped(x_t + hr, clip))]

    return _recur("rnn", xw, r_t, [h0], seq_lens, attrs, cell)
