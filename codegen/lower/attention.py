"""Fused multi-head attention (the `attention` op of passes/fuse_attention.py).

One task is a block of query rows (a multiple of ROWS) of one (batch, head):

    kt[d, j]   = k[b, j, h, d]                         one head's K^T, packed on the stack
    sc[r, j]   = scale * sum_d q[b, i0 + r, h, d] kt[d, j]      register-blocked, 6 x 16
    sc[r, j]   = exp(sc[r, j] + mask - max_j(..)), inv[r] = 1 / sum_j sc[r, j]
    out[b, i0 + r, h, :] = inv[r] * sum_j sc[r, j] v[b, j, h, :]   register-blocked, 6 x 16

so scores never leave the cache, q, k and v are read where the projections wrote them
([b, s, h * d]) and the output is written with the heads merged. Rows past the end of the
sequence repeat the last row (the same values written twice), so every block is full.
Without vector microkernels (vector_bits 0) the same steps run as plain loops.
"""

from __future__ import annotations

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup
from ...passes.fuse_attention import ROW_BLOCK as MAX_BLOCK
from .. import kernel_ir as K
from .common import LowerContext, broadcast_index, group_output, lowering
from .rows import lane_reduce

F32 = DType.float32
LANES = 8        # floats per vector in the microkernels
ROWS = 6         # rows per microkernel call (6 x 2 vectors: 12 accumulators)
VECS = 2         # vectors of columns per microkernel call


@lowering("attention")
def lower_attention(ctx: LowerContext, group: FusedGroup) -> list[K.Stmt]:
    node = group.anchor
    a = node.attrs
    batch, heads, sq, sk, d = a["batch"], a["heads"], a["seq_q"], a["seq_k"], a["head_dim"]
    q, k, v = node.inputs[:3]
    mask = node.inputs[3] if len(node.inputs) > 3 else None
    out = ctx.buf(group_output(ctx, group))
    names = ctx.names
    blocks = _ceil_div(sq, MAX_BLOCK - ROWS)
    block = ROWS * _ceil_div(_ceil_div(sq, blocks), ROWS)   # rows per task
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
    vector = ctx.storage.vector_bits > 0 and d % LANES == 0
    body += _scores_vector(ctx, block, q, kt, sc, row, q_at, sk, d, a["scale"]) if vector else \
        _scores_scalar(ctx, block, q, kt, sc, row, q_at, sk, d, a["scale"])
    body += _softmax_rows(ctx, block, sc, inv, mask, row, bb, hh, (batch, heads, sq, sk))
    body += _weighted_vector(ctx, block, v, sc, inv, out, row, q_at, kv_at, sk, d) if vector else \
        _weighted_scalar(ctx, block, v, sc, inv, out, row, q_at, kv_at, sk, d)
    return [K.For(t, K.const(0), K.const(batch * heads * blocks), body, "parallel")]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _local(ctx: LowerContext, hint: str, numel: int) -> K.Buffer:
    buf = K.Buffer(ctx.names.var(hint).name, F32, numel, "local")
    ctx.buffers[id(buf)] = buf
    return buf


def _zero() -> K.Expr:
    return K.Broadcast(K.const(0.0, F32), LANES)


def _scores_vector(ctx, block, q, kt, sc, row, q_at, sk, d, scale) -> list[K.Stmt]:
    """sc[r, j] = scale * q_r . kt[:, j]: ROWS x (VECS * LANES) tiles, scalar tail columns."""
    names = ctx.names
    step = VECS * LANES
    rb, jb, c = names.var("rb"), names.var("jb"), names.var("d")
    acc = [[K.VecVar(names.var(f"s{r}_{s}").name, LANES) for s in range(VECS)]
           for r in range(ROWS)]
    inner: list[K.Stmt] = []
    cols = [K.VecVar(names.var(f"k{s}").name, LANES) for s in range(VECS)]
    for s, col in enumerate(cols):
        inner.append(K.Let(col, K.VecLoad(kt, c * sk + jb * step + s * LANES, LANES)))
    for r in range(ROWS):
        qv = K.VecVar(names.var(f"q{r}").name, LANES)
        inner.append(K.Let(qv, K.Broadcast(ctx.load(q, q_at(row(rb * ROWS + r), c)), LANES)))
        inner += [K.Assign(acc[r][s], K.fma(acc[r][s], qv, cols[s])) for s in range(VECS)]
    factor = K.Broadcast(K.const(scale, F32), LANES)
    tile = [K.Let(acc[r][s], _zero()) for r in range(ROWS) for s in range(VECS)]
    tile.append(K.For(c, K.const(0), K.const(d), inner))
    tile += [K.VecStore(sc, (rb * ROWS + r) * sk + jb * step + s * LANES,
                        K.Binary("*", acc[r][s], factor, F32), LANES)
             for r in range(ROWS) for s in range(VECS)]
    stmts: list[K.Stmt] = []
    if sk // step:
        stmts.append(K.For(rb, K.const(0), K.const(block // ROWS), [
            K.For(jb, K.const(0), K.const(sk // step), tile)]))
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
    find_peak, peak = lane_reduce(ctx, sk, lambda i: K.Load(sc, base + i), "max", hint="peak")
    sum_exp, total = lane_reduce(
        ctx, sk, lambda i: K.call("exp_poly", K.Load(sc, base + i) - peak), "sum",
        hint="total", per_element=lambda i, e: [K.Store(sc, base + i, e)])
    stmts += find_peak + sum_exp + [
        K.Store(inv, r, K.binary("/", K.const(1.0, F32), total))]
    return [K.For(r, K.const(0), K.const(block), stmts)]


def _weighted_vector(ctx, block, v, sc, inv, out, row, q_at, kv_at, sk, d) -> list[K.Stmt]:
    """out rows = inv[r] * sum_j sc[r, j] v[j, :]: ROWS x (vecs * LANES) tiles."""
    names = ctx.names
    vecs = VECS if d % (VECS * LANES) == 0 else 1
    step = vecs * LANES
    rb, db, j = names.var("rb"), names.var("db"), names.var("j")
    acc = [[K.VecVar(names.var(f"o{r}_{s}").name, LANES) for s in range(vecs)]
           for r in range(ROWS)]
    cols = [K.VecVar(names.var(f"v{s}").name, LANES) for s in range(vecs)]
    inner: list[K.Stmt] = [K.Let(col, K.VecLoad(ctx.buf(v), kv_at(j, db * step + s * LANES), LANES))
                           for s, col in enumerate(cols)]
    for r in range(ROWS):
        pv = K.VecVar(names.var(f"p{r}").name, LANES)
        inner.append(K.Let(pv, K.Broadcast(K.Load(sc, (rb * ROWS + r) * sk + j), LANES)))
        inner += [K.Assign(acc[r][s], K.fma(acc[r][s], pv, cols[s])) for s in range(vecs)]
    tile = [K.Let(acc[r][s], _zero()) for r in range(ROWS) for s in range(vecs)]
    tile.append(K.For(j, K.const(0), K.const(sk), inner))
    for r in range(ROWS):
        norm = K.Broadcast(K.Load(inv, rb * ROWS + r), LANES)
        tile += [K.VecStore(out, q_at(row(rb * ROWS + r), db * step + s * LANES),
                            K.Binary("*", acc[r][s], norm, F32), LANES) for s in range(vecs)]
    return [K.For(rb, K.const(0), K.const(block // ROWS), [
        K.For(db, K.const(0), K.const(d // step), tile)])]


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
