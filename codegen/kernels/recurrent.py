"""The recurrence kernel: LSTM, GRU and RNN as a serial loop over time (lower/recurrent.py)."""

from __future__ import annotations

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup
from ..lower.recurrent import STACK_FLOATS, lower_recurrence, stack_floats
from ..schedules import KernelTarget, NoSchedule
from .registry import Kernel, register


def _rejects(group: FusedGroup, target: KernelTarget) -> str | None:
    node = group.anchor
    if node.inputs[0].dtype is not DType.float32:
        return f"{node.op} runs on float32, not {node.inputs[0].dtype.name}"
    if stack_floats(node.op, node.attrs["hidden"]) > STACK_FLOATS:
        return f"hidden size {node.attrs['hidden']} needs more than a task's stack " \
               f"({STACK_FLOATS} floats) for its states"
    return None


register(Kernel(
    name="recurrence_loop", ops=("lstm", "gru", "rnn"), stage="group",
    applies_to="LSTM / GRU / RNN: a task per direction and batch element, a serial loop "
               "over time of H R^T (vector over the gate columns) and the gates",
    schedule=NoSchedule, rejects=_rejects, default=lambda g, t: NoSchedule(),
    lower=lambda ctx, g, s: lower_recurrence(ctx, g)))
