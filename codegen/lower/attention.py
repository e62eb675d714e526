"""Fused multi-head attention (the `attention` op of passes/fuse_attention.py).

One task is a block of query rows (a multiple of the tile's rows) of one (batch, head):

    kt[d, j]   = k[b, j, h, d]                         one head's K^T, packed on the stack
    sc[r, j]   = scale * sum_d q[b, i0 + r, h, d] kt[d, j]      register-blocked, 8 x 32
    sc[r, j]   = exp(sc[r, j] + mask - max_j(..)), inv[r] = 1 / sum_j sc[r, j]
    out[b, i0 + r, h, :] = inv[r] * sum_j sc[r, j] v[b, j, h, :]   register-blocked, 8 x 32

so scores never leave the cache, q, k and v are read where the projections wrote them
([b, s, h * d]) and the output is written with the heads merged. Rows past the end of the
sequence repeat the last row (the same values written twice), so every block is full.
Without vector microkernels (vector_bits 0) the same steps run as plain loops.
"""

from __future__ import annotations

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup
from .. import kernel_ir as K
from ..schedules import AttentionSchedule
from .common import LowerContext, broadcast_index, group_output
from .rows import lane_reduce

F32 = DType.float32


def tile_rows(vector_bits: int) -> int:
    """Rows of the register tiles: AVX-512 8 x 2 vectors of 16 (16 accumulators; 8 rows
    divide the usual sequence lengths), AVX2 and narrower 6 x 2 vectors of 8."""
    return 8 if vector_bits >= 512 else 6


def lower_attention(ctx: LowerContext, group: FusedGroup, schedule: AttentionSchedule
                    ) -> list[K.Stmt]:
    """One kernel for the whole attention op: tasks of row blocks of one (batch, head)."""
    node = group.anchor
    a = node.attrs
    batch, heads, sq, sk, d = a["batch"], a["heads"], a["seq_q"], a["seq_k"], a["head_dim"]
    q, k, v = node.inputs[:3]
    mask = node.inputs[3] if len(node.inputs) > 3 else None
    out = ctx.buf(group_output(ctx, group))
    names = ctx.names
    lanes, rows = ctx.storage.lanes, schedule.rows
    blocks = _ceil_div(sq, schedule.row_block - rows)
    block = rows * _ceil_div(_ceil_div(sq, blocks), rows)   # rows per task
    t = names.var("task")
    bh = t // blocks
    bb, hh, i0 = bh // heads, bh % heads, (t % blocks) * block
    width = heads * d
    kt = _local(ctx, "kt", d * sk)
    sc = _local(ctx, "sc", block * sk)
    inv = _local(ctx, "inv", block)

    def row(r: K.Expr) -> K.Expr:   # the query row local row r stands for
        return K.minimum(i0 + r, K.const(sq - 1))

    def q_at(i: K.Expr, c: K.Expr) -> K.Expr:
        return (bb * sq + i) * width + hh * d + c

    def kv_at(j: K.Expr, c: K.Expr) -> K.Expr:
        return (bb * sk + j) * width + hh * d + c

    j, c = names.var("j"), names.var("d")
    body: list[K.Stmt] = [K.For(j, K.const(0), K.const(sk), [
        K.For(c, K.const(0), K.const(d),
              [K.Store(kt, c * sk + j, ctx.load(k, kv_at(j, c)))])])]
    vector = ctx.storage.vector_bits > 0 and d % lanes == 0
    tile = (lanes, rows, schedule.vecs)
    body += _scores_vector(ctx, tile, block, q, kt, sc, row, q_at, sk, d, a["scale"]) \
        if vector else _scores_scalar(ctx, block, q, kt, sc, row, q_at, sk, d, a["scale"])
    body += _softmax_rows(ctx, block, sc, inv, mask, row, bb, hh, (batch, heads, sq, sk))
    body += _weighted_vector(ctx, tile, block, v, sc, inv, out, row, q_at, kv_at, sk, d) \
        if vector else _weighted_scalar(ctx, block, v, sc, inv, out, row, q_at, kv_at, sk, d)
    return [K.For(t, K.const(0), K.const(batch * heads * blocks), body, "parallel")]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _local(ctx: LowerContext, hint: str, numel: int) -> K.Buffer:
    buf = K.Buffer(ctx.names.var(hint).name, F32, numel, "local")
    ctx.buffers[id(buf)] = buf
    return buf


def _zero(lanes: int) -> K.Expr:
    return K.Broadcast(K.const(0.0, F32), lanes)


def _scores_vector(ctx, tile, block, q, kt, sc, row, q_at, sk, d, scale) -> list[K.Stmt]:
    """sc[r, j] = scale * q_r . kt[:, j]: rows x (vecs * lanes) tiles, scalar tail columns."""
    lanes, rows, vecs = tile
    names = ctx.names
    step = vecs * lanes
    rb, jb, c = names.var("rb"), names.var("jb"), names.var("d")
    acc = [[K.VecVar(names.var(f"s{r}_{s}").name, lanes) for s in range(vecs)]
           for r in range(rows)]
    inner: list[K.Stmt] = []
    cols = [K.VecVar(names.var(f"k{s}").name, lanes) for s in range(vecs)]
    for s, col in enumerate(cols):
        inner.append(K.Let(col, K.VecLoad(kt, c * sk + jb * step + s * lanes, lanes)))
    for r in range(rows):
        qv = K.VecVar(names.var(f"q{r}").name, lanes)
        inner.append(K.Let(qv, K.Broadcast(ctx.load(q, q_at(row(rb * rows + r), c)), lanes)))
        inner += [K.Assign(acc[r][s], K.fma(acc[r][s], qv, cols[s])) for s in range(vecs)]
    factor = K.Broadcast(K.const(scale, F32), lanes)
    body = [K.Let(acc[r][s], _zero(lanes)) for r in range(rows) for s in range(vecs)]
    body.append(K.For(c, K.const(0), K.const(d), inner))
    body += [K.VecStore(sc, (rb * rows + r) * sk + jb * step + s * lanes,
                        K.Binary("*", acc[r][s], factor, F32), lanes)
             for r in range(rows) for s in range(vecs)]
    stmts: list[K.Stmt] = []
    if sk // step:
        stmts.append(K.For(rb, K.const(0), K.const(block // rows), [
            K.For(jb, K.const(0), K.const(sk // step), body)]))
    if sk % step:
        stmts += _scores_scalar(ctx, block, q, kt, sc, row, q_at, sk, d, scale, sk - sk % step)
    return stmts


def _scores_scalar(ctx, block, q, kt, sc, row, q_at, sk, d, scale, first: int = 0) -> list[K.Stmt]:
    """sc[r, j] for columns j >= first, one dot product at a time."""
    names = ctx.names
    r, j, c = names.var("r"), names.var("j"), names.var("d")
    total = names.var("dot", F32)
    return [K.For(r, K.const(0), K.const(block), [
        K.For(j, K.const(first), K.const(sk), [
            K.Let(total, K.const(0.0, F32)),
            K.For(c, K.const(0), K.const(d), [
                K.Assign(total, total + ctx.load(q, q_at(row(r), c)) * K.Load(kt, c * sk + j))]),
            K.Store(sc, r * sk + j, total * K.const(scale, F32))])])]


def _softmax_rows(ctx, block, sc, inv, mask, row, bb, hh, shape) -> list[K.Stmt]:
    """Add the mask, then exponentiate each row in place (max subtracted); inv = 1 / sum."""
    names = ctx.names
    sk = shape[3]
    r, j = names.var("r"), names.var("j")
    base = r * sk
    stmts: list[K.Stmt] = []
    if mask is not None:
        where = broadcast_index(mask.shape, shape, [bb, hh, row(r), j])
        stmts.append(K.For(j, K.const(0), K.const(sk), [
            K.Store(sc, base + j, K.Load(sc, base + j) + ctx.load(mask, where))], "vector"))
    find_peak, peak = lane_reduce(ctx, sk, lambda i: K.Load(sc, base + i), "max",
                                  ctx.storage.lanes, hint="peak")
    sum_exp, total = lane_reduce(
        ctx, sk, lambda i: K.call("exp_poly", K.Load(sc, base + i) - peak), "sum",
        ctx.storage.lanes, hint="total", per_element=lambda i, e: [K.Store(sc, base + i, e)])
    stmts += find_peak + sum_exp + [
        K.Store(inv, r, K.binary("/", K.const(1.0, F32), total))]
    return [K.For(r, K.const(0), K.const(block), stmts)]


def _weighted_vector(ctx, tile, block, v, sc, inv, out, row, q_at, kv_at, sk, d
                     ) -> list[K.Stmt]:
    """out rows = inv[r] * sum_j sc[r, j] v[j, :]: rows x (vecs * lanes) tiles."""
    lanes, rows, most = tile
    names = ctx.names
    vecs = most if d % (most * lanes) == 0 else 1
    step = vecs * lanes
    rb, db, j = names.var("rb"), names.var("db"), names.var("j")
    acc = [[K.VecVar(names.var(f"o{r}_{s}").name, lanes) for s in range(vecs)]
           for r in range(rows)]
    cols = [K.VecVar(names.var(f"v{s}").name, lanes) for s in range(vecs)]
    inner: list[K.Stmt] = [K.Let(col, K.VecLoad(ctx.buf(v), kv_at(j, db * step + s * lanes), lanes))
                           for s, col in enumerate(cols)]
    for r in range(rows):
        pv = K.VecVar(names.var(f"p{r}").name, lanes)
        inner.append(K.Let(pv, K.Broadcast(K.Load(sc, (rb * rows + r) * sk + j), lanes)))
        inner += [K.Assign(acc[r][s], K.fma(acc[r][s], pv, cols[s])) for s in range(vecs)]
    body = [K.Let(acc[r][s], _zero(lanes)) for r in range(rows) for s in range(vecs)]
    body.append(K.For(j, K.const(0), K.const(sk), inner))
    for r in range(rows):
        norm = K.Broadcast(K.Load(inv, rb * rows + r), lanes)
        body += [K.VecStore(out, q_at(row(rb * rows + r), db * step + s * lanes),
                            K.Binary("*", acc[r][s], norm, F32), lanes) for s in range(vecs)]
    return [K.For(rb, K.const(0), K.const(block // rows), [
        K.For(db, K.const(0), K.const(d // step), body)])]


def _weighted_scalar(ctx, block, v, sc, inv, out, row, q_at, kv_at, sk, d) -> list[K.Stmt]:
    """The same product as plain loops (targets without vector microkernels)."""
    names = ctx.names
    r, c, j = names.var("r"), names.var("d"), names.var("j")
    total = names.var("acc", F32)
    return [K.For(r, K.const(0), K.const(block), [
        K.For(c, K.const(0), K.const(d), [
            K.Let(total, K.const(0.0, F32)),
            K.For(j, K.const(0), K.const(sk), [
                K.Assign(total, total + K.Load(sc, r * sk + j) * ctx.load(v, kv_at(j, c)))]),
            K.Store(out, q_at(row(r), c), total * K.Load(inv, r))])])]
