"""The matmul kernels, in the order selection tries them: the cache-blocked GEMM over a
packed constant B, the panel kernel over a computed B (attention), then the portable loops."""

from __future__ import annotations

import math

from ...compiler.ir import FusedGroup
from ..lower.dense import lower_matmul_loops
from ..lower.gemm import tile_for
from ..lower.gemm_schedule import choose_tile
from ..lower.matmul_gemm import lower_matmul_packed, lower_matmul_panels, pack_matmul_weight, \
    packed_rejects, panels_rejects
from ..schedules import GemmSchedule, KernelTarget, NoSchedule, PanelsSchedule
from .gemm_defaults import gemm_schedule, tile_misfit
from .registry import Kernel, register


def _rows(group: FusedGroup) -> int:
    return math.prod(group.anchor.output.shape[:-1])


def _packed_default(group: FusedGroup, target: KernelTarget) -> GemmSchedule:
    a, b = group.anchor.inputs
    tile = choose_tile(_rows(group), 1, b.shape[-1], a.shape[-1], target.vector_bits)
    return gemm_schedule(tile.mr, tile.nv, 1, _rows(group), b.shape[-1], target)


def _packed_fits(group: FusedGroup, target: KernelTarget, s: GemmSchedule) -> str | None:
    if s.mr > _rows(group):
        return f"a tile of {s.mr} rows is taller than the matmul's {_rows(group)} rows"
    return tile_misfit(s.mr, s.nv, group.anchor.inputs[1].shape[-1], target)


register(Kernel(
    name="matmul_gemm_packed", ops=("matmul",), stage="group",
    applies_to="float32 matmuls by a constant B without batch dims (linear layers)",
    schedule=GemmSchedule, rejects=lambda g, t: packed_rejects(g), default=_packed_default,
    fits=_packed_fits, lower=lower_matmul_packed,
    pack=lambda g, t, s: {id(g.anchor.inputs[1]): pack_matmul_weight(g.anchor,
                                                                      s.nv * t.lanes)},
    min_vector_bits=256))


def _panels_default(group: FusedGroup, target: KernelTarget) -> PanelsSchedule:
    tile = tile_for(target.vector_bits)
    return PanelsSchedule(mr=tile.mr, nv=tile.nv, panel_bytes=target.l2_bytes // 2,
                          min_tasks=2 * target.threads)


def _panels_fits(group: FusedGroup, target: KernelTarget, s: PanelsSchedule) -> str | None:
    return panels_rejects(group, s.nv * target.lanes) or tile_misfit(
        s.mr, s.nv, group.anchor.inputs[1].shape[-1], target)


register(Kernel(
    name="matmul_gemm_panels", ops=("matmul",), stage="group",
    applies_to="float32 batched matmuls by a computed B whose N is whole tiles (attention)",
    schedule=PanelsSchedule,
    rejects=lambda g, t: panels_rejects(g, tile_for(t.vector_bits).nr),
    default=_panels_default, fits=_panels_fits, lower=lower_matmul_panels,
    min_vector_bits=256))


register(Kernel(
    name="matmul_loops", ops=("matmul",), stage="group", applies_to="any matmul (portable loops)",
    schedule=NoSchedule, rejects=lambda g, t: None, default=lambda g, t: NoSchedule(),
    lower=lower_matmul_loops))
