"""3x3 stride-1 conv2d in NHWC by Winograd's minimal filtering, F(m x m, 3 x 3).

An m x m block of outputs ("tile") is computed from the (m+2) x (m+2) patch of inputs under
it with alpha^2 = (m+2)^2 multiplies per channel pair instead of 9 m^2 (F(4x4): 36 instead
of 144, 4x fewer; F(2x2): 16 instead of 36):

    Y = A^T [ (G g G^T) (.) (B^T d B) ] A          (per tile, input channel, output channel)

The filter transforms U = G g G^T ([alpha^2][C][OC], each as column panels for the
microkernel) are made when a session is created, into the arena's prepared region: the
artifact ships the 3x3 weights, not U. The sum over input channels of (.) is alpha^2
independent GEMMs of [tiles x C] by [C x OC]. The matrices come from the Cook-Toom construction on the points
0, 1, -1, 2, -2 (and infinity), computed exactly here. A task is (block of tiles, group of
output panels), with a slot of the arena scratch for its transformed inputs and products:

    V[xi][t][c] = (B^T d_t B)[xi]            (every tile of the block, vectors of channels)
    M[xi][t][oc] = sum_c V[xi][t][c] U[xi][c][oc]     (the microkernel, per xi and panel)
    out[tile t] = epilogue(A^T M[.][t] A + bias)      (vectors of output channels)

The patch of a tile reads zeros outside the image (the conv's padding, and tiles past the
last row or column), and a tile stores only what lies inside the output: no padded copy of
the input is made (the registry entry asks for none). The error grows with m (the
transforms' coefficients reach 8 and 1/24); for float32 it stays near 1e-6 of the output
scale at F(4x4).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup, Node
from .. import kernel_ir as K
from ..schedules import WinogradSchedule
from .common import LowerContext, group_output, steps_of
from .gemm import Tile, merged_shape, vec_var
from .gemm_epilogue import finish_vector
from .gemm_micro import invoke, microkernel_function

#: interpolation points of F(m, 3), in order (infinity is the last, implicit one)
_POINTS = (0, 1, -1, 2, -2)
#: fewest input channels worth the transforms (the GEMMs are C deep); measured here, 16
#: already beats the direct kernel by a quarter (SqueezeNet's 55x55x16 expand convs)
MIN_CHANNELS = 16
#: fewest output rows and columns worth Winograd (F(2x2) from here, F(4x4) from 24 by default)
MIN_IMAGE = 10


@lru_cache(maxsize=None)
def transforms(m: int, r: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A^T [m x n], G [n x r], B^T [n x n]) of F(m, r), n = m + r - 1, by Cook-Toom on
    _POINTS[:n-1] and infinity: y = A^T ((G g) * (B^T d)) is the correlation of d and g."""
    n = m + r - 1
    points = [Fraction(p) for p in _POINTS[:n - 1]]

    def times(a: list, b: list) -> list:
        out = [Fraction(0)] * (len(a) + len(b) - 1)
        for i, x in enumerate(a):
            for j, y in enumerate(b):
                out[i + j] += x * y
        return out

    def product(skip: int | None) -> list:
        poly = [Fraction(1)]
        for j, q in enumerate(points):
            if j != skip:
                poly = times(poly, [-q, Fraction(1)])
        return poly

    at = [[p ** i for p in points] + [Fraction(int(i == m - 1))] for i in range(m)]
    g = []
    for j, p in enumerate(points):
        scale = Fraction(1)
        for k, q in enumerate(points):
            if k != j:
                scale *= p - q
        g.append([p ** i / scale for i in range(r)])
    g.append([Fraction(0)] * (r - 1) + [Fraction(1)])
    bt = [product(j) + [Fraction(0)] for j in range(n - 1)] + [product(None)[:n]]
    return tuple(np.array([[float(v) for v in row] for row in mat]) for mat in (at, g, bt))


@dataclass(frozen=True)
class Plan:
    """How one conv runs as Winograd: output tile m, GEMM tile, tiles per block."""

    m: int
    tile: Tile
    block: int      # tiles per block: a multiple of tile.mr

    @property
    def alpha(self) -> int:
        return self.m + 2


def winograd_tile(vector_bits: int) -> Tile:
    """The GEMM tile of the transformed products: the ISA's widest register tile."""
    return Tile(16, 14, 2) if vector_bits >= 512 else Tile(8, 6, 2)


def winograd_rejects(node: Node, vector_bits: int) -> str | None:
    """Why Winograd cannot (or should not) run conv `node`, in either layout (None: it
    can): only 3x3 at stride 1 with whole vectors of channels, and images of at least
    MIN_IMAGE rows and columns, whose many tiles reuse the transformed weights (alpha^2 / 9
    times the weights)."""
    if vector_bits < 256:
        return "Winograd needs 256-bit vectors"
    w = node.inputs[1]
    oc, c, kh, kw = w.shape
    tile = winograd_tile(vector_bits)
    if (kh, kw) != (3, 3) or tuple(node.attrs["strides"]) != (1, 1) \
            or tuple(node.attrs["dilations"]) != (1, 1) or node.attrs["group"] != 1:
        return "Winograd runs 3x3 convs at stride 1, no dilation, one group"
    if c % tile.lanes or oc % tile.nr or c < MIN_CHANNELS:
        return f"Winograd needs input channels a multiple of {tile.lanes} (at least " \
               f"{MIN_CHANNELS}) and output channels a multiple of {tile.nr}"
    if min(winograd_image(node)) < MIN_IMAGE:
        return f"the output is smaller than {MIN_IMAGE}x{MIN_IMAGE}: too few tiles"
    return None


def winograd_image(node: Node) -> tuple[int, int]:
    """(OH, OW) of conv `node` in its layout."""
    shape = node.output.shape
    return (shape[1], shape[2]) if node.attrs.get("layout") == "NHWC" else (shape[2], shape[3])


def _fill_transformed_filters(node: Node, plan: Plan, ctx: LowerContext, u: K.Buffer
                              ) -> list[K.Stmt]:
    """The kernel that makes U = G g G^T for every (oc, c) from the shipped 3x3 weights, into
    u as [alpha^2][OC/nr][C][nr] (column panels per xi): one task per output channel. It
    runs at session creation, so the artifact carries the weights, not U (alpha^2 / 9
    times their size)."""
    w = node.inputs[1]
    oc_, c_ = w.shape[0], w.shape[1]
    _, g, _ = transforms(plan.m)
    alpha, nr = plan.alpha, plan.tile.nr
    panels = oc_ // nr
    names = ctx.names
    wbuf = ctx.buf(w)
    oc, c = names.var("oc"), names.var("c")
    taps = [[names.var(f"g{k}_{j}", DType.float32) for j in range(3)] for k in range(3)]
    body: list[K.Stmt] = [K.Let(taps[k][j], K.Load(wbuf, ((oc * c_ + c) * 3 + k) * 3 + j))
                          for k in range(3) for j in range(3)]
    half = [[names.var(f"t{i}_{j}", DType.float32) for j in range(3)] for i in range(alpha)]
    body += [K.Let(half[i][j], _combine(g[i], [taps[k][j] for k in range(3)], 1))
             for i in range(alpha) for j in range(3)]
    for i in range(alpha):
        for j in range(alpha):
            at = ((i * alpha + j) * panels + oc // nr) * (c_ * nr) + c * nr + oc % nr
            body.append(K.Store(u, at, _combine(g[j], half[i], 1)))
    return [K.For(oc, K.const(0), K.const(oc_), [K.For(c, K.const(0), K.const(c_), body)],
                  "parallel")]


def _combine(coefs: np.ndarray, terms: list[K.Expr], lanes: int) -> K.Expr:
    """sum(coefs[k] * terms[k]) on vectors of `lanes` (1: scalars), skipping zeros and unit
    factors."""
    def literal(value: float) -> K.Expr:
        c = K.const(value, DType.float32)
        return c if lanes == 1 else K.Broadcast(c, lanes)

    total: K.Expr | None = None
    for c, term in zip(coefs, terms):
        if c == 0:
            continue
        part = term if abs(c) == 1 else K.Binary("*", literal(abs(float(c))), term,
                                                 DType.float32)
        if total is None:
            total = part if c > 0 else K.Unary("-", part, DType.float32)
        else:
            total = K.Binary("+" if c > 0 else "-", total, part, DType.float32)
    return total if total is not None else literal(0.0)


def _transform(names: K.Names, left: np.ndarray, load, store, stage: K.Buffer, lanes: int
               ) -> list[K.Stmt]:
    """store(i, j, (left @ D @ left^T)[i][j]) where load(k, j) gives (statements, D[k][j]).
    The column pass goes through the local `stage` (rows x n vectors, in L1), so only a
    column or a row of vectors is live at a time, not the whole patch."""
    rows, n = left.shape
    stmts: list[K.Stmt] = []
    for j in range(n):                   # stage[i][j] = sum_k left[i][k] D[k][j]
        column = []
        for k in range(n):
            loads, value = load(k, j)
            d = vec_var(names, "d", lanes)
            stmts += loads + [K.Let(d, value)] if loads else [K.Let(d, value)]
            column.append(d)
        stmts += [K.VecStore(stage, K.const((i * n + j) * lanes),
                             _combine(left[i], column, lanes), lanes) for i in range(rows)]
    for i in range(rows):                # out[i][j] = sum_k stage[i][k] left[j][k]
        row = []
        for k in range(n):
            r = vec_var(names, "r", lanes)
            stmts.append(K.Let(r, K.VecLoad(stage, K.const((i * n + k) * lanes), lanes)))
            row.append(r)
        for j in range(rows):
            stmts += store(i, j, _combine(left[j], row, lanes))
    return stmts


def lower_conv_winograd(ctx: LowerContext, group: FusedGroup, schedule: WinogradSchedule
                        ) -> list[K.Stmt]:
    """The kernel of one NHWC 3x3 stride-1 conv group by F(m x m, 3 x 3)."""
    plan = Plan(schedule.m, winograd_tile(ctx.storage.vector_bits), schedule.block)
    node = group.anchor
    x = node.inputs[0]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    n_, h_, w_, c_ = x.shape
    pt, pl, _, _ = node.attrs["pads"]   # the patch reads zeros outside the image
    _, oh_, ow_, oc_ = node.output.shape
    m, alpha, tile = plan.m, plan.alpha, plan.tile
    lanes, mr, nr = tile.lanes, tile.mr, tile.nr
    at, _, bt = transforms(m)
    names = ctx.names
    out_value = group_output(ctx, group)
    out, xbuf = ctx.buf(out_value), ctx.buf(x)
    ubuf = ctx.storage.prepared(f"{group.name}_filters", DType.float32,
                                alpha * alpha * c_ * oc_,
                                f"{group.name}: Winograd F({m}x{m}, 3x3) filter transform",
                                lambda init, u: _fill_transformed_filters(node, plan, init, u))
    ctx.buffers[id(ubuf)] = ubuf
    ldo = ctx.storage.row_stride(out_value)   # OC, or more when writing into a concat
    steps = steps_of(group.nodes[1:], node.output, bias)

    def shape_of(v):
        return merged_shape(v.shape, out_value.shape, [(0, 3), (3, 4)])

    tiles_h, tiles_w = -(-oh_ // m), -(-ow_ // m)
    tiles = n_ * tiles_h * tiles_w
    tb = plan.block
    blocks = -(-tiles // tb)
    panels = oc_ // nr
    pgroups = max(1, min(panels, -(-schedule.min_tasks // blocks)))
    per_group = -(-panels // pgroups)
    pgroups = -(-panels // per_group)
    tasks = blocks * pgroups
    xis = alpha * alpha
    v_size, m_size = xis * tb * c_, xis * tb * per_group * nr
    slot = v_size + m_size
    scratch = ctx.storage.scratch(names.var("wino").name, DType.float32, tasks * slot)
    ctx.buffers[id(scratch)] = scratch

    t = names.var("task")
    blk, pg = t // pgroups, t % pgroups
    vbase, mbase = names.var("vbase"), names.var("mbase")
    p0, p1 = names.var("p0"), names.var("p1")
    ldm = per_group * nr
    body: list[K.Stmt] = [K.Let(vbase, t * slot), K.Let(mbase, t * slot + v_size),
                          K.Let(p0, pg * per_group),
                          K.Let(p1, K.minimum(panels, pg * per_group + per_group))]

    def tile_origin(ti: K.Expr) -> tuple[K.Expr, K.Expr, K.Expr]:
        """(image, first output row, first output column) of tile ti."""
        return ti // (tiles_h * tiles_w), (ti // tiles_w) % tiles_h * m, ti % tiles_w * m

    # V: every tile slot of the block (tiles past the last read as zeros), every channel.
    lt, cv = names.var("lt"), names.var("cv")
    n, y0, x0 = names.var("n"), names.var("y0"), names.var("x0")
    ti = blk * tb + lt
    zero = K.Broadcast(K.const(0.0, DType.float32), lanes)
    stage = K.Buffer(names.var("stage").name, DType.float32, alpha * alpha * lanes, "local")
    ctx.buffers[id(stage)] = stage

    def load_x(i: int, j: int) -> tuple[list[K.Stmt], K.Expr]:
        d = vec_var(names, "x", lanes)
        ih, iw = y0 + (i - pt), x0 + (j - pl)
        inside = K.all_of([K.binary("<", ti, tiles), K.binary(">=", ih, 0),
                           K.binary("<", ih, h_), K.binary(">=", iw, 0), K.binary("<", iw, w_)])
        at_x = ((n * h_ + ih) * w_ + iw) * c_ + cv * lanes
        return [K.Let(d, zero), K.If(inside, [K.Assign(d, K.VecLoad(xbuf, at_x, lanes))])], d

    def store_v(i: int, j: int, value: K.Expr) -> list[K.Stmt]:
        return [K.VecStore(scratch, vbase + ((i * alpha + j) * tb + lt) * c_ + cv * lanes,
                           value, lanes)]

    origin = tile_origin(ti)
    body.append(K.For(lt, K.const(0), K.const(tb), [
        K.Let(n, origin[0]), K.Let(y0, origin[1]), K.Let(x0, origin[2]),
        K.For(cv, K.const(0), K.const(c_ // lanes),
              _transform(names, bt, load_x, store_v, stage, lanes))]))

    # M[xi] = V[xi] @ U[xi] for the task's panels, mr tiles at a time.
    # U streams from memory (alpha^2 / 9 times the weights): the first row block of each
    # (xi, panel) also fetches the U block needed next.
    xi, pj, rb = names.var("xi"), names.var("pj"), names.var("rb")

    def call(prefetch: bool) -> K.Invoke:
        fn = microkernel_function(lanes, mr, tile.nv, c_, 1, nr, lanes, prefetch=prefetch)
        nxt = K.binary("<", pj + 1, p1)
        ahead = (ubuf, (K.select(nxt, xi, xi + 1) * panels + K.select(nxt, pj + 1, p0))
                 * (c_ * nr)) if prefetch else None
        return invoke(fn, c_, (scratch, vbase + (xi * tb + rb * mr) * c_),
                      (ubuf, (xi * panels + pj) * (c_ * nr)),
                      (scratch, mbase + (xi * tb + rb * mr) * ldm + (pj - p0) * nr), ldm,
                      prefetch=ahead)

    body.append(K.For(xi, K.const(0), K.const(xis), [
        K.For(pj, p0, p1, [K.For(rb, K.const(0), K.const(tb // mr), [
            K.If(K.binary("==", rb, 0), [call(True)], [call(False)])])])]))

    # Output: A^T M A per tile and vector of output channels, epilogue, store what is inside.
    ov = names.var("ov")
    col = p0 * nr + ov * lanes
    spill = K.Buffer(names.var("lane").name, DType.float32, lanes, "local")

    def load_m(i: int, j: int) -> tuple[list[K.Stmt], K.Expr]:
        return [], K.VecLoad(scratch, mbase + ((i * alpha + j) * tb + lt) * ldm + ov * lanes,
                             lanes)

    def store_y(i: int, j: int, value: K.Expr) -> list[K.Stmt]:
        pixel = (n * oh_ + y0 + i) * ow_ + x0 + j
        y = vec_var(names, "y", lanes)
        store = finish_vector(ctx, steps, out, y, lanes, pixel * ldo + col,
                              ([n_ * oh_ * ow_, oc_], [pixel, col]), shape_of,
                              lambda q: [n, y0 + i, x0 + j, col + q], out_value.shape, spill)
        inside = K.all_of([K.binary("<", y0 + i, oh_), K.binary("<", x0 + j, ow_)])
        return [K.Let(y, value), K.If(inside, store)]

    transform_out = _transform(names, at, load_m, store_y, stage, lanes)
    body.append(K.For(lt, K.const(0), K.minimum(tb, tiles - blk * tb), [
        K.Let(n, origin[0]), K.Let(y0, origin[1]), K.Let(x0, origin[2]),
        K.For(ov, K.const(0), (p1 - p0) * (nr // lanes), transform_out)]))
    return [K.For(t, K.const(0), K.const(tasks), body, "parallel")]

