"""The integer kernels of qmatmul and qconv2d, in the order selection tries them: the
AVX-512 VNNI microkernel where the CPU has it (at the layout stage, the NHWC conv, which moves
qconv2d channels-last; after fusion, the GEMM), then the portable loops, which run any."""

from __future__ import annotations

from ...compiler.ir import FusedGroup
from ...compiler.dtypes import DType
from ..lower.int8_gemm import LANES, gemm_shape, int8_gemm_rejects, lower_int8_gemm, \
    pack_int8_gemm, reads_a_in_place
from ..lower.quantized import lower_qconv_direct, lower_qmatmul_loops
from ..schedules import Int8ConvNhwcSchedule, Int8GemmSchedule, KernelTarget, NoSchedule
from .registry import Kernel, register

#: accumulator registers a VNNI tile may hold (32 zmm: the rest hold B vectors and a splat)
VNNI_ACCUMULATORS = 28


def _vnni_default(group: FusedGroup, target: KernelTarget,
                  kind: type = Int8GemmSchedule) -> Int8GemmSchedule | Int8ConvNhwcSchedule:
    """A 14x2 tile (28 accumulators: vpdpbusd's latency hidden), fewer rows for a short A;
    as many panels per task as keep a quarter of L2 (a conv: all of them, since each task
    gathers its rows of A again, which costs more than streaming B from L3: 1.5x on
    ResNet-18's int8 convs) and still give every thread four tasks."""
    m, k, n = gemm_shape(group.anchor)
    nv = 2 if n > LANES else 1
    mr = min(VNNI_ACCUMULATORS // nv, 14, m)
    panel_bytes = -(-k // 4) * 4 * nv * LANES
    panels = -(-n // (nv * LANES))
    per_task = max(1, min(panels, target.l2_bytes // 4 // panel_bytes))
    if not reads_a_in_place(group.anchor):
        per_task = panels
    row_tiles = -(-m // mr)
    while per_task > 1 and row_tiles * -(-panels // per_task) < 4 * target.threads:
        per_task //= 2
    return kind(mr=mr, nv=nv, panels=per_task)


def _vnni_fits(group: FusedGroup, target: KernelTarget, s: Int8GemmSchedule) -> str | None:
    if s.mr * s.nv > VNNI_ACCUMULATORS:
        return f"a {s.mr}x{s.nv}-vector tile needs {s.mr * s.nv} accumulators; AVX-512 has " \
               f"room for {VNNI_ACCUMULATORS}"
    return None


def _nhwc_rejects(group: FusedGroup) -> str | None:
    """Why the NHWC VNNI conv cannot run this qconv2d (None: it can)."""
    node = group.anchor
    if node.attrs.get("layout", "NCHW") != "NCHW":
        return "already laid out"
    if node.inputs[0].dtype not in (DType.int8, DType.uint8):
        return "not an 8-bit input"
    return int8_gemm_rejects(group)


register(Kernel(
    name="int8_conv_nhwc_vnni", ops=("qconv2d",), stage="layout", layout="NHWC",
    applies_to="qconv2d (one group) in NHWC: a tap's channels read a word at a time, "
               "1x1 stride-1 convs as a GEMM over pixels",
    schedule=Int8ConvNhwcSchedule, rejects=lambda g, t: _nhwc_rejects(g),
    default=lambda g, t: _vnni_default(g, t, Int8ConvNhwcSchedule), fits=_vnni_fits,
    lower=lower_int8_gemm, pack=lambda g, t, s: pack_int8_gemm(g, s),
    features=("avx512_vnni",), min_vector_bits=512))

register(Kernel(
    name="int8_gemm_vnni", ops=("qmatmul", "qconv2d"), stage="group",
    applies_to="int8/uint8 qmatmul by a constant B, qconv2d (one group) as an implicit GEMM",
    schedule=Int8GemmSchedule, rejects=lambda g, t: int8_gemm_rejects(g),
    default=_vnni_default, fits=_vnni_fits, lower=lower_int8_gemm,
    pack=lambda g, t, s: pack_int8_gemm(g, s), features=("avx512_vnni",),
    min_vector_bits=512))

register(Kernel(
    name="qmatmul_loops", ops=("qmatmul",), stage="group",
    applies_to="any qmatmul (portable int32 loops)", schedule=NoSchedule,
    rejects=lambda g, t: None, default=lambda g, t: NoSchedule(), lower=lower_qmatmul_loops))

register(Kernel(
    name="qconv_direct", ops=("qconv2d",), stage="group", layout="NCHW",
    applies_to="any qconv2d (portable int32 loops)", schedule=NoSchedule,
    rejects=lambda g, t: None, default=lambda g, t: NoSchedule(), lower=lower_qconv_direct))
