"""Row kernels: softmax and layer norm, a task per row, the row's sums and maxima kept in
interleaved partial results so their loops vectorize (lower/reduce.py, rows.py)."""

from __future__ import annotations

from ...compiler.ir import FusedGroup
from ..lower.reduce import lower_layer_norm, lower_softmax
from ..schedules import KernelTarget, RowsSchedule
from .loops import loops


def _default(group: FusedGroup, target: KernelTarget) -> RowsSchedule:
    """One vector register of partial results."""
    return RowsSchedule(partials=target.lanes)


loops("softmax_rows", ("softmax", "log_softmax"),
      "softmax over any axis: contiguous float32 rows with the polynomial exp",
      lower_softmax, RowsSchedule, _default)
loops("layer_norm_rows", ("layer_norm",),
      "layer normalization over the trailing axes, with its elementwise epilogue",
      lower_layer_norm, RowsSchedule, _default)
