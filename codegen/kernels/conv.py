"""The conv2d kernels, in the order selection tries them, and their default schedules.

Layout stage (the node as imported; an NHWC kernel moves the conv channels-last):
Winograd, then the implicit GEMM, then the NHWC depthwise kernel. Fusion stage: a 1x1 conv
run by the implicit GEMM and the depthwise conv after it, in one kernel. Group stage (the
convs no NHWC kernel claimed): NCHW depthwise, band (stride 1), im2col, then the direct
loops, which run any conv.
"""

from __future__ import annotations

from ...compiler.ir import FusedGroup
from ..lower.conv_band import band_rejects, lower_conv_band
from ..lower.conv_depthwise import depthwise_rejects, lower_conv_depthwise
from ..lower.conv_gemm import nchw_gemm_rejects, pack_conv_weight
from ..lower.conv_im2col import lower_conv_im2col
from ..lower.conv_nhwc import geometry, lower_conv_nhwc, nhwc_tile, pack_nhwc_weight
from ..lower.conv_nhwc_depthwise import lower_conv_nhwc_depthwise, pack_depthwise_weight
from ..lower.conv_pointwise_depthwise import lower_pointwise_depthwise, \
    pointwise_depthwise_rejects
from ..lower.conv_winograd import lower_conv_winograd, winograd_image, winograd_rejects, \
    winograd_tile
from ..lower.dense import lower_conv_direct
from ..lower.gemm import tile_for
from ..lower.nhwc_kinds import nhwc_dense_rejects, nhwc_depthwise_rejects
from ..schedules import BandSchedule, DepthwiseSchedule, GemmSchedule, Im2colSchedule, \
    KernelTarget, NhwcDepthwiseSchedule, NoSchedule, PointwiseDepthwiseSchedule, \
    WinogradSchedule
from .gemm_defaults import gemm_schedule, tile_misfit
from .registry import Kernel, register

#: output images at least this many rows and columns run F(4x4) by default, smaller F(2x2)
WINOGRAD_M4_IMAGE = 24


# -- layout stage ------------------------------------------------------------------------------

def _winograd_default(group: FusedGroup, target: KernelTarget) -> WinogradSchedule:
    """F(4x4) on big images; blocks of two GEMM tiles, or one where that leaves threads
    without a block."""
    node = group.anchor
    oh, ow = winograd_image(node)
    m = 4 if min(oh, ow) >= WINOGRAD_M4_IMAGE else 2
    tile = winograd_tile(target.vector_bits)
    tiles = node.output.shape[0] * -(-oh // m) * -(-ow // m)
    panels = node.inputs[1].shape[0] // tile.nr
    block = 2 * tile.mr if -(-tiles // (2 * tile.mr)) * panels >= target.threads else tile.mr
    return WinogradSchedule(m=m, block=block, min_tasks=4 * target.threads)


def _winograd_fits(group: FusedGroup, target: KernelTarget, s: WinogradSchedule) -> str | None:
    mr = winograd_tile(target.vector_bits).mr
    if s.block % mr:
        return f"block = {s.block} is not a multiple of the GEMM tile's {mr} rows"
    return None


register(Kernel(
    name="conv_nhwc_winograd", ops=("conv2d",), stage="layout", layout="NHWC",
    applies_to="float32 3x3 stride-1 convs, channels in whole vectors, output >= 10x10",
    schedule=WinogradSchedule,
    rejects=lambda g, t: winograd_rejects(g.anchor, t.vector_bits) or nhwc_dense_rejects(
        g.anchor),
    default=_winograd_default, fits=_winograd_fits, lower=lower_conv_winograd,
    min_vector_bits=256))


def _gemm_default(group: FusedGroup, target: KernelTarget) -> GemmSchedule:
    g = geometry(group.anchor)
    tile = nhwc_tile(group.anchor, target.vector_bits)
    return gemm_schedule(tile.mr, tile.nv, g.rows, g.row_len, g.oc, target)


def _gemm_fits(group: FusedGroup, target: KernelTarget, s: GemmSchedule) -> str | None:
    g = geometry(group.anchor)
    if s.mr > g.row_len:
        return f"a tile of {s.mr} rows is taller than the conv's runs of {g.row_len} pixels"
    return tile_misfit(s.mr, s.nv, g.oc, target)


def _pack_nhwc_gemm(group: FusedGroup, target: KernelTarget, s: GemmSchedule) -> dict:
    return {id(group.anchor.inputs[1]): pack_nhwc_weight(group.anchor, s.nv * target.lanes)}


register(Kernel(
    name="conv_nhwc_gemm", ops=("conv2d",), stage="layout", layout="NHWC", padded_input=True,
    applies_to="float32 dense convs (one group, no dilation along W, weights not shared)",
    schedule=GemmSchedule, rejects=lambda g, t: nhwc_dense_rejects(g.anchor),
    default=_gemm_default, fits=_gemm_fits, lower=lower_conv_nhwc, pack=_pack_nhwc_gemm,
    min_vector_bits=256))


def _nhwc_depthwise_default(group: FusedGroup, target: KernelTarget) -> NhwcDepthwiseSchedule:
    return NhwcDepthwiseSchedule(min_tasks=8 * target.threads)


register(Kernel(
    name="conv_nhwc_depthwise", ops=("conv2d",), stage="layout", layout="NHWC",
    applies_to="float32 depthwise convs of at least 16 channels, windows up to 7x7",
    schedule=NhwcDepthwiseSchedule, rejects=lambda g, t: nhwc_depthwise_rejects(g.anchor),
    default=_nhwc_depthwise_default, lower=lower_conv_nhwc_depthwise,
    pack=lambda g, t, s: {id(g.anchor.inputs[1]): pack_depthwise_weight(g.anchor)},
    min_vector_bits=256))


# -- fusion stage ------------------------------------------------------------------------------

def _split_pair(group: FusedGroup):
    at = next(i for i, n in enumerate(group.nodes) if i and n.op == "conv2d")
    return group.anchor, group.nodes[1:at], group.nodes[at]


def _pair_rejects(group: FusedGroup, target: KernelTarget) -> str | None:
    if not any(i and n.op == "conv2d" for i, n in enumerate(group.nodes)):
        return "the group holds one conv"
    pw, between, dw = _split_pair(group)
    return pointwise_depthwise_rejects(pw, between, dw,
                                       nhwc_tile(pw, target.vector_bits).nr)


def _pair_default(group: FusedGroup, target: KernelTarget) -> PointwiseDepthwiseSchedule:
    tile = nhwc_tile(group.anchor, target.vector_bits)
    return PointwiseDepthwiseSchedule(mr=tile.mr, nv=tile.nv, slot_bytes=target.l2_bytes // 2,
                                      tasks=4 * target.threads)


def _pair_fits(group: FusedGroup, target: KernelTarget, s: PointwiseDepthwiseSchedule
               ) -> str | None:
    pw, between, dw = _split_pair(group)
    wide = dw.inputs[0].shape[3]
    if wide % (s.nv * target.lanes):
        return f"{wide} wide channels are not a multiple of the tile's {s.nv * target.lanes} " \
               f"columns"
    return tile_misfit(s.mr, s.nv, wide, target)


def _pack_pair(group: FusedGroup, target: KernelTarget, s: PointwiseDepthwiseSchedule) -> dict:
    pw, _, dw = _split_pair(group)
    return {id(pw.inputs[1]): pack_nhwc_weight(pw, s.nv * target.lanes),
            id(dw.inputs[1]): pack_depthwise_weight(dw)}


register(Kernel(
    name="conv_nhwc_pointwise_depthwise", ops=("conv2d",), stage="fusion", layout="NHWC",
    applies_to="a 1x1 conv (+ relu/clip) feeding a depthwise conv over a tensor >= 8 MiB",
    schedule=PointwiseDepthwiseSchedule, rejects=_pair_rejects, default=_pair_default,
    fits=_pair_fits, lower=lower_pointwise_depthwise, pack=_pack_pair, min_vector_bits=256))


# -- group stage -------------------------------------------------------------------------------

def _depthwise_default(group: FusedGroup, target: KernelTarget) -> DepthwiseSchedule:
    n, c = group.anchor.inputs[0].shape[:2]
    per_task = 8
    while per_task > 1 and n * c // per_task < target.threads:
        per_task //= 2
    return DepthwiseSchedule(channels_per_task=per_task, rows=4)


def _depthwise_fits(group: FusedGroup, target: KernelTarget, s: DepthwiseSchedule
                    ) -> str | None:
    if s.channels_per_task & (s.channels_per_task - 1):
        return f"channels_per_task = {s.channels_per_task} is not a power of 2"
    return None


register(Kernel(
    name="conv_nchw_depthwise", ops=("conv2d",), stage="group", layout="NCHW",
    applies_to="float32 depthwise convs, windows up to 7x7",
    schedule=DepthwiseSchedule, rejects=lambda g, t: depthwise_rejects(g),
    default=_depthwise_default, fits=_depthwise_fits, lower=lower_conv_depthwise,
    min_vector_bits=256))


def _pack_nchw(group: FusedGroup, target: KernelTarget, s) -> dict:
    return {id(group.anchor.inputs[1]): pack_conv_weight(group.anchor, s.mr)}


def _nchw_tile_fits(group: FusedGroup, target: KernelTarget, s) -> str | None:
    if s.mr * s.nv > target.register_budget:
        return f"a {s.mr}x{s.nv}-vector tile needs {s.mr * s.nv} accumulators; the ISA has " \
               f"room for {target.register_budget}"
    return None


def _band_default(group: FusedGroup, target: KernelTarget) -> BandSchedule:
    """Tasks of 192 to 512 padded positions (a band shared by many blocks, a small tile of
    partial sums), fewer rows where images, groups and panels leave threads idle."""
    tile = tile_for(target.vector_bits)
    node = group.anchor
    n, _, _, w = node.inputs[0].shape
    oh = node.output.shape[2]
    groups = node.attrs["group"]
    panels = -(-(node.output.shape[1] // groups) // tile.mr)
    wp = w + node.attrs["pads"][1] + node.attrs["pads"][3]
    chunks = -(-target.threads // (n * groups * panels))   # row chunks an image needs
    most = 512 if chunks == 1 else max(wp, min(512, oh // chunks * wp))
    return BandSchedule(mr=tile.mr, nv=tile.nv, min_positions=min(192, most),
                        max_positions=most, k_chunk=256, min_tasks=3 * target.threads)


def _band_fits(group: FusedGroup, target: KernelTarget, s: BandSchedule) -> str | None:
    if s.min_positions > s.max_positions:
        return f"min_positions = {s.min_positions} exceeds max_positions = {s.max_positions}"
    return _nchw_tile_fits(group, target, s)


register(Kernel(
    name="conv_nchw_band", ops=("conv2d",), stage="group", layout="NCHW",
    applies_to="float32 stride-1 convs with constant weights (any window, padding, dilation)",
    schedule=BandSchedule, rejects=lambda g, t: band_rejects(g), default=_band_default,
    fits=_band_fits, lower=lower_conv_band, pack=_pack_nchw, min_vector_bits=256))


def _im2col_default(group: FusedGroup, target: KernelTarget) -> Im2colSchedule:
    tile = tile_for(target.vector_bits)
    return Im2colSchedule(mr=tile.mr, nv=tile.nv, max_positions=256, k_chunk=256,
                          min_tasks=target.threads)


register(Kernel(
    name="conv_nchw_im2col", ops=("conv2d",), stage="group", layout="NCHW",
    applies_to="float32 convs with constant weights, any stride",
    schedule=Im2colSchedule, rejects=lambda g, t: nchw_gemm_rejects(g),
    default=_im2col_default, fits=_nchw_tile_fits, lower=lower_conv_im2col, pack=_pack_nchw,
    min_vector_bits=256))


register(Kernel(
    name="conv_direct", ops=("conv2d",), stage="group", layout="NCHW",
    applies_to="any conv (portable loops)",
    schedule=NoSchedule, rejects=lambda g, t: None, default=lambda g, t: NoSchedule(),
    lower=lower_conv_direct))
