"""Data movement kernels: each output element read from one place (lower/movement.py,
bits.py, packed.py)."""

from __future__ import annotations

from ...compiler.ir import FusedGroup
from ..lower.bits import lower_bitcast
from ..lower.movement import (lower_concat, lower_expand, lower_flat_copy, lower_gather,
                              lower_pad, lower_slice, lower_transpose)
from ..lower.packed import lower_pack, lower_unpack
from ..schedules import KernelTarget, TransposeSchedule
from .loops import default_chunk, loops, unscheduled


def _transpose_default(group: FusedGroup, target: KernelTarget) -> TransposeSchedule:
    """Straight-line stores for inner dims up to 8 (an image's 3 channels, NCHW -> NHWC)."""
    return TransposeSchedule(chunk=default_chunk(target), unroll_inner=8)


loops("copy_loops", ("reshape",), "a flat copy", lower_flat_copy)
loops("transpose_loops", ("transpose",), "any permutation, as an index map",
      lower_transpose, TransposeSchedule, _transpose_default)
loops("slice_loops", ("slice",), "strided slices, as an index map", lower_slice)
loops("expand_loops", ("expand",), "broadcasts to a larger shape", lower_expand)
loops("gather_loops", ("gather",), "gather along one axis (indices wrapped and clamped)",
      lower_gather)
loops("pad_loops", ("pad",), "constant, edge, reflect and wrap padding", lower_pad)
unscheduled("concat_loops", ("concat",),
            "a copy per input not already written in place by its producer", lower_concat)
loops("bitcast_loops", ("bitcast",), "the input's bytes read as another dtype", lower_bitcast)
loops("pack_loops", ("pack",), "sub-byte dtypes packed into bytes", lower_pack)
loops("unpack_loops", ("unpack",), "sub-byte dtypes unpacked from bytes", lower_unpack)
