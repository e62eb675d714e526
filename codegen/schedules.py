"""Schedules as data: one frozen dataclass per kernel family, apart from the algorithms.

A schedule holds every tile size, block size, task count and threshold a kernel's loop
builder reads; the builder receives it as an argument and hides no constant of its own.
Defaults come from the kernel registry (codegen/kernels/), computed from a KernelTarget:
the vector width, the target's cache sizes and the thread budget of the compilation. A
schedule file (`kiln compile --schedule`) replays schedules field by field; every field
declares the range it may take, so a bad file is refused with the field and its range.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..compiler.errors import KilnError


class ScheduleError(KilnError, ValueError):
    """A schedule (from a file, or asked for) does not fit the kernel or the group."""


@dataclass(frozen=True)
class KernelTarget:
    """What default schedules are computed from: the machine and the thread budget."""

    vector_bits: int          # 0: no vector microkernels
    l1d_bytes: int
    l2_bytes: int
    threads: int              # the most threads the artifact is built to keep busy
    #: the CPU's ISA features ("avx512_vnni") that kernels may require, where the renderer
    #: prints them (the integer dot products need its "int_dot" capability)
    features: frozenset[str] = frozenset()

    @property
    def lanes(self) -> int:
        """float32 lanes of one microkernel vector."""
        return 16 if self.vector_bits >= 512 else 8

    @property
    def register_budget(self) -> int:
        """Accumulator vectors one register tile may hold (AVX-512: 32 registers, AVX2:
        16; the rest hold B vectors and a splat)."""
        return 28 if self.vector_bits >= 512 else 12


def knob(low: int, high: int, doc: str) -> Any:
    """A schedule field with its allowed range [low, high] and what it controls."""
    return field(metadata={"range": (low, high), "doc": doc})


@dataclass(frozen=True)
class GemmSchedule:
    """The cache-blocked GEMM over packed B (gemm_schedule.py): NHWC dense convs, matmuls
    with a constant B."""

    mr: int = knob(1, 16, "rows of the register tile")
    nv: int = knob(1, 4, "vectors of columns of the register tile")
    block_bytes: int = knob(4096, 64 << 20, "bytes of one K block of one panel of B (L2)")
    a_block_bytes: int = knob(4096, 1 << 30, "most bytes of A one task reads (L2)")
    streamed_bytes: int = knob(0, 1 << 40, "B larger than this is prefetched a block ahead")
    min_tasks: int = knob(1, 1 << 16, "tasks to make where the shape allows")


@dataclass(frozen=True)
class Int8GemmSchedule:
    """The AVX-512 VNNI int8 GEMM (int8_gemm.py): qmatmul by a constant B, qconv2d as an
    implicit GEMM. A task is one tile of rows by a group of panels of B."""

    mr: int = knob(1, 16, "rows of the register tile")
    nv: int = knob(1, 4, "vectors of 16 int32 columns of the register tile")
    panels: int = knob(1, 1 << 16, "panels of B (16 * nv columns each) one task runs")


@dataclass(frozen=True)
class Int8ConvNhwcSchedule:
    """The AVX-512 VNNI NHWC int8 conv (int8_gemm.py, pack_rows_nhwc): an implicit GEMM
    over pixels whose A rows are a tap's contiguous channels, copied a word at a time. A
    task is one tile of pixels by a group of panels of the packed weight."""

    mr: int = knob(1, 16, "pixels of the register tile")
    nv: int = knob(1, 4, "vectors of 16 int32 output channels of the register tile")
    panels: int = knob(1, 1 << 16, "panels of the weight (16 * nv channels each) one task runs")


@dataclass(frozen=True)
class WinogradSchedule:
    """F(m x m, 3 x 3) Winograd over NHWC (conv_winograd.py)."""

    m: int = knob(2, 4, "output tile edge: 2 or 4")
    block: int = knob(1, 256, "tiles per block, a multiple of the GEMM tile's rows")
    min_tasks: int = knob(1, 1 << 16, "tasks to make where the shape allows")


@dataclass(frozen=True)
class NhwcDepthwiseSchedule:
    """Depthwise conv over NHWC, vectors along channels (conv_nhwc_depthwise.py)."""

    min_tasks: int = knob(1, 1 << 16, "tasks to make where the shape allows")


@dataclass(frozen=True)
class PointwiseDepthwiseSchedule:
    """1x1 conv then depthwise conv in one kernel, band by band (conv_pointwise_depthwise.py)."""

    mr: int = knob(1, 16, "rows of the 1x1 conv's register tile")
    nv: int = knob(1, 4, "vectors of columns of the 1x1 conv's register tile")
    slot_bytes: int = knob(4096, 64 << 20, "most bytes of one task's band of wide rows")
    tasks: int = knob(1, 1 << 16, "tasks, each with its band slot")


@dataclass(frozen=True)
class DepthwiseSchedule:
    """Depthwise conv over NCHW, a padded band per channel (conv_depthwise.py)."""

    channels_per_task: int = knob(1, 64, "channels one task runs in turn (a power of 2)")
    rows: int = knob(1, 64, "output rows computed together")


@dataclass(frozen=True)
class BandSchedule:
    """Stride-1 NCHW conv over a padded band of input rows (conv_band.py)."""

    mr: int = knob(1, 16, "output channels of the register tile")
    nv: int = knob(1, 4, "vectors of positions of the register tile")
    min_positions: int = knob(1, 1 << 20, "output positions per task to aim for, at least")
    max_positions: int = knob(1, 1 << 20, "and at most")
    k_chunk: int = knob(1, 1 << 20, "depth of one K chunk")
    min_tasks: int = knob(1, 1 << 16, "tasks to make by splitting output channels")


@dataclass(frozen=True)
class Im2colSchedule:
    """Any-stride NCHW conv through im2col chunks (conv_im2col.py)."""

    mr: int = knob(1, 16, "output channels of the register tile")
    nv: int = knob(1, 4, "vectors of positions of the register tile")
    max_positions: int = knob(1, 1 << 20, "output positions per chunk, at most")
    k_chunk: int = knob(1, 1 << 20, "depth of one K chunk")
    min_tasks: int = knob(1, 1 << 16, "tasks to make by splitting output channels")


@dataclass(frozen=True)
class PanelsSchedule:
    """matmul with a computed B, read in place panel by panel (matmul_gemm.py)."""

    mr: int = knob(1, 16, "rows of the register tile")
    nv: int = knob(1, 4, "vectors of columns of the register tile")
    panel_bytes: int = knob(4096, 1 << 30, "bytes of B panels one task keeps hot (L2)")
    min_tasks: int = knob(1, 1 << 16, "tasks to make where there are enough panels")


@dataclass(frozen=True)
class AttentionSchedule:
    """Fused attention, a task per block of query rows of one head (attention.py)."""

    row_block: int = knob(2, 1024, "score rows one task keeps at most (with one tile spare)")
    rows: int = knob(1, 16, "query rows of the register tiles")
    vecs: int = knob(1, 4, "vectors of columns of the register tiles, where d allows")


@dataclass(frozen=True)
class RecurrenceSchedule:
    """LSTM / GRU / RNN as a loop over time (recurrent.py): the per-step product H R^T in
    blocks of gate columns, each block's accumulators kept in registers over H."""

    vecs: int = knob(1, 16, "vectors of gate columns per register block of H R^T")


@dataclass(frozen=True)
class ReductionSchedule:
    """reduce_* over a block of axes (reduce.py)."""

    min_inner: int = knob(1, 1 << 20, "kept elements after the block that make it row by row")
    row_chunk: int = knob(1, 1 << 20, "elements of a kept row per task, row by row")


@dataclass(frozen=True)
class RowsSchedule:
    """Softmax and layer norm over contiguous rows, a task per row (lower/reduce.py)."""

    partials: int = knob(1, 64, "interleaved partial sums (maxima) a row reduction keeps")


@dataclass(frozen=True)
class LoopSchedule:
    """The portable loop nests (elementwise chains, data movement, indexing, sampling):
    parallel over the outer dims, vector over the innermost (lower/elementwise.py)."""

    chunk: int = knob(64, 1 << 24, "elements per task where one long loop is split")


@dataclass(frozen=True)
class TransposeSchedule:
    """Transpose as an index map (lower/movement.py)."""

    chunk: int = knob(64, 1 << 24, "elements per task where one long loop is split")
    unroll_inner: int = knob(1, 64, "an innermost output dim this short, moved by the "
                                    "permutation, is written as straight-line stores")


@dataclass(frozen=True)
class NoSchedule:
    """Kernels with nothing to tune (the portable loops)."""


def fields(schedule_type: type) -> list[tuple[str, tuple[int, int], str]]:
    """(name, (low, high), doc) of each field of a schedule type."""
    return [(f.name, f.metadata["range"], f.metadata["doc"])
            for f in dataclasses.fields(schedule_type)]


def as_dict(schedule: Any) -> dict[str, int]:
    """A schedule as the JSON object a schedule file holds."""
    return dataclasses.asdict(schedule)


def from_dict(schedule_type: type, data: Mapping[str, Any], where: str) -> Any:
    """A schedule of `schedule_type` from a schedule file's object, every field present
    and in range; `where` names the line in errors."""
    if not isinstance(data, Mapping):
        raise ScheduleError(f"{where}: 'schedule' must be an object of fields")
    names = [name for name, _, _ in fields(schedule_type)]
    unknown = sorted(set(data) - set(names))
    missing = [name for name in names if name not in data]
    if unknown or missing:
        raise ScheduleError(f"{where}: a {schedule_type.__name__} has the fields "
                            f"{', '.join(names) or '(none)'}"
                            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                            + (f"; missing: {', '.join(missing)}" if missing else ""))
    for name, (low, high), _ in fields(schedule_type):
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ScheduleError(f"{where}: {schedule_type.__name__}.{name} = {value!r} is out "
                                f"of range: an integer in [{low}, {high}]")
    return schedule_type(**{name: data[name] for name in names})
