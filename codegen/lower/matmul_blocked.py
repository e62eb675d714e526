"""matmul with a constant B through the cache-blocked GEMM schedule (BLIS-style).

B [K, N] is packed at compile time into panels of nr columns ([N/nr][K][nr]): a K block of a
panel is a contiguous slice, so no run-time repacking. A task is (blocks of mc rows of A,
group of panels); threads take tasks statically. Per task and block of rows:

    for kb in K blocks of kc:                     (partial sums accumulate in the output)
        [pack_a: Ap = A[m0:m0+mc, k0:k0+kc] as [mc/mr][kc][mr], splats read contiguously]
        for nc panels at a time:                  (their kc x nr slices share L2)
            for row block rb of mr rows:          (its A micro-panel stays in L1)
                for panel pj:
                    C[rb, pj] (+)= A[rb, kb] @ B[pj][kb]      (the shared microkernel)
                    last kb: C[rb, pj] = epilogue(C[rb, pj])  (on vectors, tile still in L1)

The schedule's numbers are gemm.Blocking (gemm.blocking_for picks them from the tile). The
last panel, when N is not a multiple of nr, goes through a local tile and a scalar copy; the
epilogue falls back to a scalar loop where an op has no vector form.
"""

from __future__ import annotations

import math

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup
from .. import kernel_ir as K
from .common import LowerContext, epilogue, group_output
from .gemm import Blocking, Tile, blocking_for, merged_shape
from .gemm_epilogue import vector_epilogue
from .gemm_micro import invoke, microkernel_function

#: make at least this many tasks when the shape allows (2 threads, with slack)
_MIN_TASKS = 4
#: at most this many tasks (each owns a packed-A slot of the arena scratch); a task then
#: takes every `tasks`-th block of rows
_MAX_TASKS = 32


def lower_matmul_blocked(ctx: LowerContext, group: FusedGroup, tile: Tile,
                         blocking: Blocking | None = None) -> list[K.Stmt]:
    """The kernel of one matmul group whose B is packed (matmul_gemm.pack_matmul_weight)."""
    node = group.anchor
    a, b = node.inputs
    full_shape = node.output.shape
    rank = len(full_shape)
    k_, n_ = a.shape[-1], b.shape[-1]
    m_ = math.prod(full_shape[:-1])
    mr, nr, lanes = tile.mr, tile.nr, tile.lanes
    blocking = blocking or blocking_for(tile)
    kc = min(blocking.kc, k_)
    mc = min(-(-blocking.mc // mr) * mr, -(-m_ // mr) * mr)   # whole row blocks
    kblocks = -(-k_ // kc)
    panels, full_panels = -(-n_ // nr), n_ // nr
    mblocks = -(-m_ // mc)
    pgroups = max(1, min(panels, -(-_MIN_TASKS // mblocks)))
    group_size = -(-panels // pgroups)
    pgroups = -(-panels // group_size)
    mtasks = max(1, min(mblocks, _MAX_TASKS // pgroups))
    tasks = mtasks * pgroups
    spans = [(0, rank - 1), (rank - 1, rank)]
    merged_out = [m_, n_]
    names = ctx.names
    out = ctx.buf(group_output(ctx, group))
    abuf, bbuf = ctx.buf(a), ctx.buf(b)
    slot = -(-mc // mr) * mr * kc
    apack = ctx.storage.scratch(names.var("apack").name, DType.float32, tasks * slot) \
        if blocking.pack_a else None
    tbuf = K.Buffer(names.var("tile").name, DType.float32, mr * nr, "local")
    for buf in (apack, tbuf):
        if buf is not None:
            ctx.buffers[id(buf)] = buf

    def shape_of(v):
        return merged_shape(v.shape, full_shape, spans)

    t = names.var("task")
    m0, mrows = names.var("m0"), names.var("mrows")
    kb, k0, kl = names.var("kb"), names.var("k0"), names.var("kl")
    p_lo, p_hi = names.var("p_lo"), names.var("p_hi")
    mt, q = names.var("mt"), names.var("q")
    body: list[K.Stmt] = [
        K.Let(mt, t // pgroups),
        K.Let(p_lo, (t % pgroups) * group_size),
        K.Let(p_hi, K.minimum(panels, p_lo + group_size))]
    base = t * slot
    last = K.binary("==", kb, kblocks - 1)
    accumulate = K.binary(">", kb, 0)

    # Pack A's block: apack[base + (r / mr) * (mr * kc) + kk * mr + r % mr] = A[m0 + r, k0 + kk]
    r, kk = names.var("r"), names.var("kk")
    pack = K.For(r, K.const(0), mrows, [
        K.For(kk, K.const(0), kl, [
            K.Store(apack, base + (r // mr) * (mr * kc) + kk * mr + r % mr,
                    K.Load(abuf, (m0 + r) * k_ + k0 + kk))], "vector")]) \
        if blocking.pack_a else None

    def finish(row0: K.Expr, rows: int, col0: K.Expr) -> list[K.Stmt]:
        """The epilogue over a full rows x nr tile of the output at (row0, col0)."""
        if len(group.nodes) == 1:
            return []
        i = names.var("i")
        stmts: list[K.Stmt] = []
        for v in range(tile.nv):
            index = (row0 + i) * n_ + col0 + v * lanes
            res = vector_epilogue(ctx, group.nodes[1:], node.output,
                                  K.VecLoad(out, index, lanes), lanes, merged_out,
                                  [row0 + i, col0 + v * lanes], shape_of)
            if res is None:
                return scalar_finish(row0, rows, col0, K.const(nr))
            lets, value = res
            stmts += lets + [K.VecStore(out, index, value, lanes)]
        return [K.For(i, K.const(0), K.const(rows), stmts)]

    def scalar_finish(row0: K.Expr, rows: int, col0: K.Expr, ncols: K.Expr) -> list[K.Stmt]:
        i, jc = names.var("i"), names.var("jc")
        index = (row0 + i) * n_ + col0 + jc
        lets, value = epilogue(ctx, group.nodes[1:], node.output, K.Load(out, index),
                               merged_out, [row0 + i, col0 + jc], shape_of)
        return [K.For(i, K.const(0), K.const(rows), [
            K.For(jc, K.const(0), ncols, lets + [K.Store(out, index, value)], "vector")])]

    def when_last(stmts: list[K.Stmt]) -> list[K.Stmt]:
        if not stmts:
            return []
        return stmts if kblocks == 1 else [K.If(last, stmts)]

    def row_block(rb0: K.Expr, rows: int, pj: K.Expr, edge: bool) -> list[K.Stmt]:
        """Microkernel + epilogue for rows [rb0, rb0 + rows) of the block, panel pj."""
        if blocking.pack_a:
            fn = microkernel_function(lanes, rows, tile.nv, 1, mr, nr, lanes)
            a_at = (apack, base + rb0 * kc)   # rb0 is a multiple of mr
        else:   # splats straight from A's rows
            fn = microkernel_function(lanes, rows, tile.nv, k_, 1, nr, lanes)
            a_at = (abuf, (m0 + rb0) * k_ + k0)
        b_at = (bbuf, pj * (k_ * nr) + k0 * nr)
        row0 = m0 + rb0
        if not edge:
            call = invoke(fn, kl, a_at, b_at, (out, row0 * n_ + pj * nr), n_, accumulate)
            return [call] + when_last(finish(row0, rows, pj * nr))
        # the last, ragged panel: through the local tile, then added into the output
        ncols = n_ - full_panels * nr
        call = invoke(fn, kl, a_at, b_at, (tbuf, K.const(0)), nr, 0)
        i, jc = names.var("i"), names.var("jc")
        index = (row0 + i) * n_ + pj * nr + jc
        prev = K.select(accumulate, K.Load(out, index), K.const(0.0, DType.float32))
        add = K.For(i, K.const(0), K.const(rows), [
            K.For(jc, K.const(0), K.const(ncols),
                  [K.Store(out, index, prev + K.Load(tbuf, i * nr + jc))], "vector")])
        tail = scalar_finish(row0, rows, pj * nr, K.const(ncols)) if len(group.nodes) > 1 \
            else []
        return [call, add] + when_last(tail)

    def panel(pj: K.Expr, edge: bool) -> list[K.Stmt]:
        rb = names.var("rb")
        stmts: list[K.Stmt] = [K.For(rb, K.const(0), mrows // mr,
                                     row_block(rb * mr, mr, pj, edge))]
        if m_ % mr:   # only the last block of rows has a remainder (mc is a multiple of mr)
            rem = m_ % mr
            stmts.append(K.If(K.binary("==", mrows % mr, rem),
                              row_block(mrows - rem, rem, pj, edge)))
        return stmts

    # Full panels, nc at a time (their kc x nr slices stay in L2): each row block's A
    # micro-panel stays in L1 while the block's panels pass by.
    jb, j_lo, j_hi = names.var("jb"), names.var("j_lo"), names.var("j_hi")
    rb, pj = names.var("rb"), names.var("pj")
    nc = max(1, min(blocking.nc, group_size))
    sweep = [K.For(rb, K.const(0), mrows // mr,
                   [K.For(pj, j_lo, j_hi, row_block(rb * mr, mr, pj, False))])]
    if m_ % mr:   # only the last block of rows has a remainder (mc is a multiple of mr)
        rem = m_ % mr
        pj2 = names.var("pj")
        sweep.append(K.If(K.binary("==", mrows % mr, rem), [
            K.For(pj2, j_lo, j_hi, row_block(mrows - rem, rem, pj2, False))]))
    kloop: list[K.Stmt] = [
        K.Let(k0, kb * kc), K.Let(kl, K.minimum(kc, k_ - k0))] + ([pack] if blocking.pack_a else []) + [
        K.For(jb, K.const(0), K.const(-(-group_size // nc)), [
            K.Let(j_lo, p_lo + jb * nc),
            K.Let(j_hi, K.minimum(j_lo + nc, K.minimum(p_hi, full_panels)))] + sweep)]
    if full_panels < panels:
        kloop.append(K.If(K.binary("==", p_hi, panels), panel(K.const(full_panels), True)))
    body.append(K.For(q, K.const(0), (mblocks - mt + (mtasks - 1)) // mtasks, [
        K.Let(m0, (mt + q * mtasks) * mc), K.Let(mrows, K.minimum(mc, m_ - m0)),
        K.For(kb, K.const(0), K.const(kblocks), kloop)]))
    return [K.For(t, K.const(0), K.const(tasks), body, "parallel")]
