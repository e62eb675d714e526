"""Dense conv2d in NHWC as an implicit GEMM over weights packed at compile time.

Output pixels are the GEMM's rows, output channels its columns, and K runs over the window
(kh, kw, c) of the input, which passes/pad_convs.py has already zero-padded. For a fixed kh
the (kw, c) part of a window is KW*C consecutive floats of one input row, so a tile of mr
consecutive output pixels of one row reads

    A[i, k] = x[base + i*sw*C + s*dh*W*C + kk]        k = (s, kk): segment s = kh, kk < KW*C

and an output row of pixels is a run of the GEMM schedule (gemm_schedule.py: segmented
microkernel, K blocks, task split, register epilogues). The weights [OC, C, KH, KW] are
packed as panels of nr output channels over K in (kh, kw, c) order ([OC/nr][K][nr]). A 1x1
stride-1 conv is a plain GEMM whose rows are all the pixels. Dilation along W is not
handled here (the registry's conv_nhwc_gemm entry does not claim such convs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...compiler.ir import FusedGroup, Node
from .. import kernel_ir as K
from .common import LowerContext, group_output, steps_of
from ..schedules import GemmSchedule
from .gemm import Tile, merged_shape, pack_columns
from .gemm_schedule import GemmSpec, choose_tile, lower_gemm


@dataclass(frozen=True)
class Geometry:
    """An NHWC dense conv (padding already explicit) as a segmented GEMM."""

    n: int
    h: int
    w: int
    c: int
    oh: int
    ow: int
    oc: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int

    @property
    def flat(self) -> bool:
        """1x1 at stride 1: every output pixel is a row of one long GEMM."""
        return self.kh == self.kw == 1 and self.sh == self.sw == 1

    @property
    def rows(self) -> int:
        """Runs of output pixels that are equally spaced in the input."""
        return 1 if self.flat else self.n * self.oh

    @property
    def row_len(self) -> int:
        return self.n * self.oh * self.ow if self.flat else self.ow

    @property
    def seg_depth(self) -> int:
        return self.kw * self.c

    @property
    def depth(self) -> int:
        return self.kh * self.seg_depth


def geometry(node: Node) -> Geometry:
    x, w = node.inputs[0], node.inputs[1]
    n, h, wd, c = x.shape
    _, oh, ow, oc = node.output.shape
    _, _, kh, kw = w.shape
    assert node.attrs["pads"] == (0, 0, 0, 0) and node.attrs["dilations"][1] == 1
    return Geometry(n, h, wd, c, oh, ow, oc, kh, kw, *node.attrs["strides"],
                    node.attrs["dilations"][0])


def nhwc_tile(node: Node, vector_bits: int) -> Tile:
    """The register tile of least estimated time for this conv (gemm_schedule.choose_tile
    over its runs): the default schedule's."""
    g = geometry(node)
    return choose_tile(g.row_len, g.rows, g.oc, g.depth, vector_bits)


def pack_nhwc_weight(node: Node, nr: int) -> np.ndarray:
    """W [OC, C, KH, KW] as column panels over K in (kh, kw, c) order."""
    w = node.inputs[1].data.astype(np.float32)
    oc = w.shape[0]
    matrix = np.ascontiguousarray(w.transpose(2, 3, 1, 0)).reshape(-1, oc)
    return pack_columns(matrix, nr)


def lower_conv_nhwc(ctx: LowerContext, group: FusedGroup, schedule: GemmSchedule
                    ) -> list[K.Stmt]:
    """The kernel of one dense NHWC conv group (weights packed by pack_nhwc_weight)."""
    node = group.anchor
    g = geometry(node)
    x, w = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    out_value = group_output(ctx, group)

    def run_base(r: K.Expr) -> K.Expr:
        if g.flat:
            return K.const(0)
        return (r // g.oh) * (g.h * g.w * g.c) + (r % g.oh) * (g.sh * g.w * g.c)

    spec = GemmSpec(
        a=ctx.buf(x), b=ctx.buf(w), out=ctx.buf(out_value),
        ldo=ctx.storage.row_stride(out_value),   # OC, or more when writing into a concat
        n=g.oc, runs=g.rows, run_len=g.row_len, run_base=run_base,
        a_rs=g.c if g.flat else g.sw * g.c, segments=g.kh, seg_depth=g.seg_depth,
        a_seg=g.dh * g.w * g.c, a_bytes=4 * g.n * g.h * g.w * g.c,
        schedule=schedule, lanes=ctx.storage.lanes,
        steps=steps_of(group.nodes[1:], node.output, bias),
        shape_of=lambda v: merged_shape(v.shape, out_value.shape, [(0, 3), (3, 4)]),
        index_of=lambda m, col: [m // (g.oh * g.ow), (m // g.ow) % g.oh, m % g.ow, col])
    return lower_gemm(ctx, spec)
