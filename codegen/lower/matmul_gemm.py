"""matmul through the microkernel: C[m, n] = A[m, k] @ B[k, n].

Two cases take this path:
- B is a constant (a linear layer): packed at compile time into panels of nr columns
  (gemm.pack_columns, zero-padded); A's leading dims fold into M; the kernel is the
  cache-blocked schedule of gemm_schedule.py (one run of M rows, one segment of K).
- B is computed (attention) with N a multiple of nr: B's rows are read in place (below). A
  task is a group of column panels of one batch; it walks A's rows mr at a time and runs
  each row block against every panel of its group; the fused epilogue (bias, residual,
  scaling) is applied while the tile is written out.
"""

from __future__ import annotations

import math

import numpy as np

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup, Node
from .. import kernel_ir as K
from ..schedules import GemmSchedule, PanelsSchedule
from .common import LowerContext, epilogue, group_output, steps_of
from .gemm import Tile, merged_shape, microkernel, pack_columns
from .gemm_schedule import GemmSpec, lower_gemm


def epilogue_rejects(group: FusedGroup, spans: list[tuple[int, int]]) -> str | None:
    """Why the group's epilogue operands do not merge onto the kernel's view of the
    output (None: they do)."""
    out_shape = group.anchor.output.shape
    for member in group.nodes[1:]:
        for v in member.inputs:
            if merged_shape(v.shape, out_shape, spans) is None:
                return f"the epilogue operand {v.name} {list(v.shape)} does not broadcast " \
                       f"along the kernel's rows and columns"
    return None


def float32_rejects(group: FusedGroup) -> str | None:
    """Why the microkernels cannot run this matmul group's dtypes (None: float32 all along)."""
    a, b = group.anchor.inputs
    if a.dtype is not DType.float32 or b.dtype is not DType.float32 \
            or group.nodes[-1].output.dtype is not DType.float32:
        return "the microkernels are float32"
    return None


def packed_b(node: Node) -> bool:
    """B is a constant read only here, with no batch dims: it gets packed panels."""
    b = node.inputs[1]
    return b.is_constant and len(b.users) == 1 and math.prod(b.shape[:-2]) == 1


def packed_rejects(group: FusedGroup) -> str | None:
    """Why the packed-B GEMM cannot run this matmul group (None: it can)."""
    if not packed_b(group.anchor):
        return "B is not a constant read only by this matmul, without batch dims"
    rank = len(group.anchor.output.shape)
    return float32_rejects(group) or epilogue_rejects(group, [(0, rank - 1), (rank - 1, rank)])


def panels_rejects(group: FusedGroup, nr: int) -> str | None:
    """Why the in-place panel kernel cannot run this matmul group at nr columns per panel."""
    node = group.anchor
    a, b = node.inputs
    out_shape = node.output.shape
    rank = len(out_shape)
    if packed_b(node):
        return "B is a constant: it is packed for the cache-blocked GEMM instead"
    if b.shape[-1] % nr:
        return f"N = {b.shape[-1]} is not a multiple of the tile's {nr} columns"
    if list(a.shape[:-2]) != list(out_shape[:-2]) or list(b.shape[:-2]) != list(out_shape[:-2]):
        return "A and B do not both have the output's batch dims"
    return float32_rejects(group) or epilogue_rejects(
        group, [(0, rank - 2), (rank - 2, rank - 1), (rank - 1, rank)])


def pack_matmul_weight(node: Node, nr: int) -> np.ndarray:
    """B [K, N] as column panels of nr columns."""
    b = node.inputs[1].data.astype(np.float32)
    return pack_columns(b.reshape(b.shape[-2], b.shape[-1]), nr)


def lower_matmul_panels(ctx: LowerContext, group: FusedGroup, schedule: PanelsSchedule
                        ) -> list[K.Stmt]:
    """The kernel of one matmul group whose B is computed: read in place, panel by panel."""
    node = group.anchor
    a, b = node.inputs
    full_shape = node.output.shape
    tile = Tile(ctx.storage.lanes, schedule.mr, schedule.nv)
    rank = len(full_shape)
    k_, n_ = a.shape[-1], b.shape[-1]
    nr = tile.nr
    panels = -(-n_ // nr)
    batches, m_ = math.prod(full_shape[:-2]), full_shape[-2]
    spans = [(0, rank - 2), (rank - 2, rank - 1), (rank - 1, rank)]
    names = ctx.names
    out = ctx.buf(group_output(ctx, group))
    abuf, bbuf = ctx.buf(a), ctx.buf(b)
    acc = K.Buffer(names.var("tile").name, DType.float32, tile.mr * nr, "local")
    ctx.buffers[id(acc)] = acc

    # A task is a group of column panels: each block of mr rows of A, read once, meets
    # every panel of the group while the group's B stays in L2.
    group_size = max(1, min(schedule.panel_bytes // (k_ * nr * 4),
                            -(-panels // schedule.min_tasks)))
    groups = -(-panels // group_size)
    t = names.var("task")
    bi = t // groups
    pj = names.var("pj")
    j0 = pj * nr
    a_base = bi * (m_ * k_)
    b_base = bi * (k_ * n_)
    out_base = bi * (m_ * n_)
    ncols = names.var("ncols")
    pj_hi = names.var("pj_hi")
    body: list[K.Stmt] = [K.Let(pj_hi, K.minimum(panels, (t % groups) * group_size
                                                 + group_size))]
    merged_out = [batches, m_, n_]

    def shape_of(v):
        return merged_shape(v.shape, full_shape, spans)

    def b_at(k: K.Expr, v: int) -> K.Expr:
        return K.VecLoad(bbuf, b_base + k * n_ + j0 + v * tile.lanes, tile.lanes)

    def rows_block(m0: K.Expr, rows: int) -> list[K.Stmt]:
        def a_at(i: int, k: K.Expr) -> K.Expr:
            return K.Load(abuf, a_base + (m0 + i) * k_ + k)

        stmts: list[K.Stmt] = [K.Let(ncols, K.minimum(nr, n_ - j0))]
        stmts += microkernel(names, tile, rows, k_, a_at, b_at, acc)
        i, jc = names.var("i"), names.var("jc")
        m = m0 + i
        idx = [bi, m, j0 + jc]
        lets, value = epilogue(ctx, group.nodes[1:], node.output, K.Load(acc, i * nr + jc),
                               merged_out, idx, shape_of)
        index = out_base + m * n_ + j0 + jc
        stmts.append(K.For(i, K.const(0), K.const(rows), [
            K.For(jc, K.const(0), ncols, lets + [K.Store(out, index, value)], "vector")]))
        return [K.For(pj, (t % groups) * group_size, pj_hi, stmts)]

    full = m_ // tile.mr
    if full:
        mp = names.var("mp")
        body.append(K.For(mp, K.const(0), K.const(full), rows_block(mp * tile.mr, tile.mr)))
    if m_ % tile.mr:
        body += rows_block(K.const(full * tile.mr), m_ % tile.mr)
    return [K.For(t, K.const(0), K.const(batches * groups), body, "parallel")]


def lower_matmul_packed(ctx: LowerContext, group: FusedGroup, schedule: GemmSchedule
                        ) -> list[K.Stmt]:
    """A matmul with packed B as one run of M = prod(leading dims) rows of A."""
    node = group.anchor
    a, b = node.inputs
    full_shape = node.output.shape
    rank = len(full_shape)
    m_, k_, n_ = math.prod(full_shape[:-1]), a.shape[-1], b.shape[-1]
    lead = full_shape[:-1]

    def index_of(m: K.Expr, col: K.Expr) -> list[K.Expr]:
        idx, rest = [], m
        for d, stride in zip(lead, [math.prod(lead[i + 1:]) for i in range(len(lead))]):
            idx.append((rest // stride) % d if d > 1 else K.const(0))
        return idx + [col]

    spec = GemmSpec(
        a=ctx.buf(a), b=ctx.buf(b), out=ctx.buf(group_output(ctx, group)), ldo=n_, n=n_,
        runs=1, run_len=m_, run_base=lambda r: K.const(0), a_rs=k_, segments=1,
        seg_depth=k_, a_seg=0, a_bytes=4 * m_ * k_, schedule=schedule,
        lanes=ctx.storage.lanes,
        steps=steps_of(group.nodes[1:], node.output),
        shape_of=lambda v: merged_shape(v.shape, full_shape, [(0, rank - 1), (rank - 1, rank)]),
        index_of=index_of)
    return lower_gemm(ctx, spec)
