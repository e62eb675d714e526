"""The recurrence kernel: LSTM, GRU and RNN as a serial loop over time (lower/recurrent.py)."""

from __future__ import annotations

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup
from ..lower.recurrent import STACK_FLOATS, lower_recurrence, stack_floats
from ..schedules import KernelTarget, RecurrenceSchedule
from .registry import Kernel, register


def _rejects(group: FusedGroup, target: KernelTarget) -> str | None:
    node = group.anchor
    if node.inputs[0].dtype is not DType.float32:
        return f"{node.op} runs on float32, not {node.inputs[0].dtype.name}"
    if stack_floats(node.op, node.attrs["hidden"]) > STACK_FLOATS:
        return f"hidden size {node.attrs['hidden']} needs more than a task's stack " \
               f"({STACK_FLOATS} floats) for its states"
    return None


def _default(group: FusedGroup, target: KernelTarget) -> RecurrenceSchedule:
    """Blocks of up to 8 vectors of columns (half the ISA's accumulator budget: the other
    half holds R's rows as they load), no wider than the gate columns."""
    node = group.anchor
    columns = node.inputs[1].shape[-1]
    lanes = target.lanes if target.vector_bits else 1
    return RecurrenceSchedule(vecs=max(1, min(8, target.register_budget // 2,
                                              columns // lanes)))


def _fits(group: FusedGroup, target: KernelTarget, s: RecurrenceSchedule) -> str | None:
    if s.vecs > target.register_budget:
        return f"{s.vecs} accumulator vectors; the ISA has room for {target.register_budget}"
    return None


register(Kernel(
    name="recurrence_loop", ops=("lstm", "gru", "rnn"), stage="group",
    applies_to="LSTM / GRU / RNN: a task per direction and batch element, a serial loop "
               "over time of H R^T (vector over the gate columns) and the gates",
    schedule=RecurrenceSchedule, rejects=_rejects, default=_default, fits=_fits,
    lower=lower_recurrence))
