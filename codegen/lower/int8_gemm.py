"""The AVX-512 VNNI int8 GEMM: qmatmul by a constant B and qconv2d as an implicit GEMM.

vpdpbusd (K.Dot4) multiplies four unsigned bytes of A by four signed bytes of B and adds
the four products to an int32 lane. B is packed at compile time in panels of nr = 16 * nv
columns, four consecutive k of one column per 32-bit word ([panel][K/4][nr] words, K padded
to a multiple of 4 with zeros); a register tile of mr rows splats one word of A (four k of
one row) per row and k step:

    for k4 in [0, K/4):   b{v} = B[k4][v*16 ...]            (16 words: 16 columns x 4 k)
                          a{i} = splat(A word (row i, k4));  c{i}_{v} = dpbusd(c, a, b)

Signed activations are shifted by +128 into bytes (u = a + 128) and uint8 weights by -128
(b' = b - 128); with zero points a_zero, b_zero[n], the exact accumulator is

    sum_k (a - a_zero)(b - b_zero) = dot(u, b') + rowsum(u) * d[n] + corr[n]
    d[n] = b_shift - b_zero[n],  corr[n] = (a_shift + a_zero) * (K * b_zero[n] - colsum(b)[n])

corr and d are computed with the packing and stored where the node's b_zero_point was
(corr[N] then d[N]); where A's zero point is a run-time input (a_zero_point None) the
stored corr[n] is K * b_zero[n] - colsum(b)[n] and the epilogue multiplies it by
a_shift + a_zero; rowsum(u) is computed per row only where some d[n] is not 0
(asymmetric or uint8 weights). The requantize (lower/quantized.finish) runs on the tile on
its way to the output. A task is one tile of rows by `panels` panels of B (consecutive
tasks share their panels, which stay in L2). A is read in place where it is a matmul's
rows with K a multiple of 4 (its words are the rows' bytes); otherwise each task packs its
rows ([K/4][mr] words: a conv's taps gathered, padding reading the zero point). An NHWC
conv (k = (kh, kw, c), C a multiple of 4) packs [mr][K/4] words instead, a tap's channels
copied a word at a time (pack_rows_nhwc), and reads a 1x1 stride-1 conv's pixels in place
as a matmul's rows.
"""

from __future__ import annotations

import math

import numpy as np

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup, Node
from .. import kernel_ir as K
from ..schedules import Int8ConvNhwcSchedule, Int8GemmSchedule
from .common import LowerContext, group_output
from .conv_geometry import conv_geometry
from .quantized import a_zero_point, finish

I32 = DType.int32
LANES = 16   # int32 lanes of one 512-bit vector
#: the xor that turns four int8 bytes into the uint8 bytes a + 128
SIGN_FLIP = np.int32(np.uint32(0x80808080).view(np.int32))


def gemm_shape(node: Node) -> tuple[int, int, int]:
    """(M, K, N) of the GEMM a qmatmul or qconv2d node runs."""
    if node.op == "qmatmul":
        a, b = node.inputs[:2]
        return math.prod(a.shape[:-1]), b.shape[0], b.shape[1]
    _, icg, kh, kw = node.inputs[1].shape
    if is_nhwc(node):
        n, oh, ow, oc = node.output.shape
    else:
        n, oc, oh, ow = node.output.shape
    return n * oh * ow, icg * kh * kw, oc


def is_nhwc(node: Node) -> bool:
    """Whether `node` is a qconv2d run channels-last (its k order is (kh, kw, c))."""
    return node.attrs.get("layout") == "NHWC"


def weight_matrix(node: Node) -> np.ndarray:
    """B as a [K, N] int64 matrix (a conv's OIHW weight: k = (c, kh, kw))."""
    b = node.inputs[1].data.astype(np.int64)
    return b if node.op == "qmatmul" else b.reshape(b.shape[0], -1).T


def _shift(dtype: DType) -> int:
    """What moves a byte of `dtype` into the operand range vpdpbusd takes."""
    return 128 if dtype is DType.int8 else 0


def _kernel_weight(node: Node) -> np.ndarray:
    """b' = b - 128 for uint8 weights (b itself for int8) as [K, N] in the kernel's k order:
    weight_matrix's, or an NHWC conv's (kh, kw, c)."""
    shift = 128 if node.inputs[1].dtype is DType.uint8 else 0
    if not is_nhwc(node):
        return weight_matrix(node) - shift
    w = node.inputs[1].data.astype(np.int64) - shift
    return w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0])


def pack_b(node: Node, nr: int) -> np.ndarray:
    """B as int8 bytes of [panel][K/4][nr][4] (b' = b - 128 for uint8 weights)."""
    b = _kernel_weight(node)
    k, n = b.shape
    k4, panels = -(-k // 4), -(-n // nr)
    padded = np.zeros((k4 * 4, panels * nr), np.int64)
    padded[:k, :n] = b
    packed = padded.reshape(k4, 4, panels, nr).transpose(2, 0, 3, 1)
    return np.ascontiguousarray(packed).astype(np.int8).reshape(-1)


def corrections(node: Node) -> tuple[np.ndarray, np.ndarray]:
    """(corr[N], d[N]) of the module docstring, as int32 (corr without its factor
    a_shift + a_zero where A's zero point is known only at run time)."""
    b = weight_matrix(node)
    k = b.shape[0]
    b_zero = node.inputs[2].data.astype(np.int64)
    a_zero = node.attrs["a_zero_point"]
    b_shift = 128 if node.inputs[1].dtype is DType.uint8 else 0
    corr = k * b_zero - b.sum(axis=0)
    if a_zero is not None:
        corr = (_shift(node.inputs[0].dtype) + a_zero) * corr
    return corr.astype(np.int32), (b_shift - b_zero).astype(np.int32)


def pack_int8_gemm(group: FusedGroup, schedule: Int8GemmSchedule | Int8ConvNhwcSchedule
                   ) -> dict[int, np.ndarray]:
    """The packed weight and the column corrections (in b_zero_point's place)."""
    node = group.anchor
    corr, d = corrections(node)
    return {id(node.inputs[1]): pack_b(node, schedule.nv * LANES),
            id(node.inputs[2]): np.concatenate([corr, d])}


def int8_gemm_rejects(group: FusedGroup) -> str | None:
    """Why the VNNI GEMM cannot run this qmatmul / qconv2d (None: it can)."""
    node = group.anchor
    b, b_zero = node.inputs[1:3]
    if not b.is_constant:
        return "B is computed at run time (the VNNI kernel packs a constant B)"
    if len({id(u) for u in b.users}) > 1 or len({id(u) for u in b_zero.users}) > 1:
        return "the weight or its zero points are shared with another node"
    if node.op == "qconv2d" and node.attrs["group"] != 1:
        return "a grouped conv (the implicit GEMM runs one group)"
    return None


def reads_a_in_place(node: Node) -> bool:
    """Whether A's words are read in place: a matmul's rows, or an NHWC 1x1 conv's pixels
    (stride 1, no padding), K a multiple of 4."""
    if node.op == "qmatmul":
        return node.inputs[1].shape[0] % 4 == 0
    return is_nhwc(node) and node.inputs[1].shape[1] % 4 == 0 \
        and node.inputs[1].shape[2:] == (1, 1) and tuple(node.attrs["strides"]) == (1, 1) \
        and not any(node.attrs["pads"])


def microkernel(rows: int, nv: int, a_rs: int, a_ks: int, flip: bool) -> K.Function:
    """The shared VNNI microkernel: a rows x (16*nv) int32 tile over `depth4` k steps, A
    word (i, k4) at a[i*a_rs + k4*a_ks] (xor 0x80808080 first when `flip`: int8 bytes read
    in place), B words at b[k4*nr + v*16 ...], the tile stored row-major to c (row nr)."""
    nr = nv * LANES
    name = f"kiln_qmk_vnni_{rows}x{nv}_a{a_rs}_{a_ks}" + ("_flip" if flip else "")
    depth4, k = K.Var("depth4"), K.Var("k")
    a = K.Buffer("a", I32, 0, "param")
    b = K.Buffer("b", I32, 0, "param")
    c = K.Buffer("c", I32, 0, "param")
    accs = [[K.VecVar(f"c{i}_{v}", LANES, I32) for v in range(nv)] for i in range(rows)]
    zero = K.Broadcast(K.const(0, I32), LANES)
    body: list[K.Stmt] = [K.Let(acc, zero) for row in accs for acc in row]
    bs = [K.VecVar(f"b{v}", LANES, I32) for v in range(nv)]
    step: list[K.Stmt] = [K.Let(bv, K.VecLoad(b, k * nr + v * LANES, LANES))
                          for v, bv in enumerate(bs)]
    for i in range(rows):
        word: K.Expr = K.Load(a, k * a_ks + i * a_rs)
        if flip:
            word = K.binary("^", word, K.const(int(SIGN_FLIP), I32))
        av = K.VecVar(f"a{i}", LANES, I32)
        step.append(K.Let(av, K.Broadcast(word, LANES)))
        step += [K.Assign(accs[i][v], K.Dot4(accs[i][v], av, bs[v], LANES))
                 for v in range(nv)]
    body.append(K.For(k, K.const(0), depth4, step))
    body += [K.VecStore(c, K.const(i * nr + v * LANES), accs[i][v], LANES)
             for i in range(rows) for v in range(nv)]
    doc = (f"VNNI int8 GEMM microkernel: {rows}x{nr} int32 tile, A word stride (row {a_rs}, "
           f"k {a_ks}){', int8 A flipped to uint8' if flip else ''}, B [k4][{nr}] words")
    return K.Function(name, [depth4, a, b, c], body, doc)


def _local(ctx: LowerContext, hint: str, numel: int) -> K.Buffer:
    buf = K.Buffer(ctx.names.var(hint).name, I32, numel, "local")
    ctx.buffers[id(buf)] = buf
    return buf


def _words(ctx: LowerContext, node_value, numel: int, hint: str) -> K.Buffer:
    """A view of a weight (packed by pack_int8_gemm) or activation as int32 words."""
    whole = ctx.buf(node_value)
    view = K.Buffer(ctx.names.var(hint).name, I32, numel, whole.storage, whole.location)
    ctx.buffers[id(view)] = view
    return view


def _pack_rows(ctx: LowerContext, node: Node, m0: K.Expr, mr: int, k_: int, apack: K.Buffer,
               rowsum: K.Buffer | None) -> list[K.Stmt]:
    """Rows m0 .. m0+mr of A as [K/4][mr] words of uint8 bytes (rows past M and k past K
    stay 0): a matmul's rows, or a conv's taps with padding reading the zero point."""
    names = ctx.names
    m_total = gemm_shape(node)[0]
    k4 = -(-k_ // 4)
    shift = _shift(node.inputs[0].dtype)
    a_zero = node.attrs["a_zero_point"]
    w, i, kk = names.var("w"), names.var("i"), names.var("kk")
    m = names.var("m")
    byte = names.var("u", I32)

    def put(k: K.Expr, value: K.Expr) -> list[K.Stmt]:
        """Add byte k of row i to its word: b0 + b1*2^8 + b2*2^16 + b3*2^24 with b3 read
        as signed, so the int32 arithmetic never overflows."""
        at = (k // 4) * mr + i
        top = K.binary("==", k % 4, 3)
        signed = K.select(top, K.binary("^", byte, K.const(128, I32)) - K.const(128, I32),
                          byte)
        place = K.cast(K.binary("<<", K.const(1), (k % 4) * 8), I32)
        stmts: list[K.Stmt] = [
            K.Let(byte, K.cast(value, I32) + K.const(shift, I32)),
            K.Store(apack, at, K.Load(apack, at) + signed * place)]
        if rowsum is not None:
            stmts.append(K.Store(rowsum, i, K.Load(rowsum, i) + byte))
        return stmts

    x = node.inputs[0]
    if node.op == "qmatmul":
        gather = K.For(kk, K.const(0), K.const(k_), put(kk, ctx.load(x, m * k_ + kk)))
    else:
        (_, _, _, (_, c_, h_, w_), (_, _, kh_, kw_), (oh_, ow_), (sh, sw), (dh, dw),
         (pt, pl, _, _), _) = conv_geometry(node)
        c, kh, kw = names.var("c"), names.var("kh"), names.var("kw")
        n, p = m // (oh_ * ow_), m % (oh_ * ow_)
        ih, iw = names.var("ih"), names.var("iw")
        inside = K.all_of([K.binary(">=", ih, 0), K.binary("<", ih, h_),
                           K.binary(">=", iw, 0), K.binary("<", iw, w_)])
        value = K.select(inside, K.cast(ctx.load(x, ((n * c_ + c) * h_ + ih) * w_ + iw), I32),
                         K.const(a_zero, I32))
        tap = [K.Let(ih, (p // ow_) * sh + kh * dh - pt), K.Let(iw, (p % ow_) * sw + kw * dw - pl)]
        tap += put((c * kh_ + kh) * kw_ + kw, value)
        gather = K.For(c, K.const(0), K.const(c_), [K.For(kh, K.const(0), K.const(kh_), [
            K.For(kw, K.const(0), K.const(kw_), tap)])])
    stmts: list[K.Stmt] = [K.For(w, K.const(0), K.const(k4 * mr),
                                 [K.Store(apack, w, K.const(0, I32))], "vector")]
    if rowsum is not None:
        stmts.append(K.For(i, K.const(0), K.const(mr), [K.Store(rowsum, i, K.const(0, I32))]))
    stmts.append(K.For(i, K.const(0), K.const(mr), [
        K.Let(m, m0 + i), K.If(K.binary("<", m, m_total), [gather])]))
    return stmts


def _byte_sum(word: K.Expr) -> K.Expr:
    """The sum of a word's four bytes, each read unsigned."""
    parts = [K.binary("&", K.binary(">>", word, K.const(8 * b, I32)) if b else word,
                      K.const(255, I32)) for b in range(4)]
    return parts[0] + parts[1] + parts[2] + parts[3]


def pack_rows_nhwc(ctx: LowerContext, node: Node, m0: K.Expr, mr: int, apack: K.Buffer,
                   rowsum: K.Buffer | None) -> list[K.Stmt]:
    """Rows m0 .. m0+mr of an NHWC conv's A as [mr][K/4] words of uint8 bytes, k = (kh, kw,
    c): a tap's channels are contiguous in the input, C a multiple of 4
    (passes/pad_qconv_channels.py pads the others), so they are copied a word at a time
    (int8 words xor 0x80808080); a tap outside the image reads the zero point. Rows past M
    are zeroed."""
    names = ctx.names
    x = node.inputs[0]
    _, h_, w_, c_ = x.shape
    assert c_ % 4 == 0, f"{node.name}: pad_qconv_channels gives NHWC qconvs whole words"
    _, oh_, ow_, _ = node.output.shape
    _, _, kh_, kw_ = node.inputs[1].shape
    (sh, sw), (dh, dw) = node.attrs["strides"], node.attrs["dilations"]
    pt, pl = node.attrs["pads"][:2]
    cw, k4 = c_ // 4, gemm_shape(node)[1] // 4
    zero_byte = (node.attrs["a_zero_point"] + _shift(x.dtype)) & 255
    fill = K.const(int(np.uint32(zero_byte * 0x01010101).view(np.int32)), I32)
    m_total = gemm_shape(node)[0]
    i, m, j = names.var("i"), names.var("m"), names.var("j")
    kh, kw, ih, iw = names.var("kh"), names.var("kw"), names.var("ih"), names.var("iw")
    pixel, w0, oy, ox = names.var("pixel"), names.var("w0"), names.var("oy"), names.var("ox")
    words = _words(ctx, x, x.type.numel // 4, "xw")
    word: K.Expr = K.Load(words, pixel * cw + j)
    if x.dtype is DType.int8:
        word = K.binary("^", word, K.const(int(SIGN_FLIP), I32))
    to = i * k4 + w0 + j
    per_image = oh_ * ow_

    def copy(count: K.Expr | int) -> list[K.Stmt]:
        return [K.For(j, K.const(0), K.as_expr(count), [K.Store(apack, to, word)], "vector")]

    def zeros(count: K.Expr | int) -> list[K.Stmt]:
        return [K.For(j, K.const(0), K.as_expr(count), [K.Store(apack, to, fill)], "vector")]

    at_pixel = K.Let(pixel, ((m // per_image) * h_ + ih) * w_ + iw)
    # one tap at a time where the window's row crosses the image's left or right edge
    tap = [K.Let(iw, ox * sw + kw * dw - pl), K.Let(w0, (kh * kw_ + kw) * cw),
           K.If(K.all_of([K.binary(">=", iw, 0), K.binary("<", iw, w_)]),
                [at_pixel] + copy(cw), zeros(cw))]
    row_inside: K.Stmt = K.For(kw, K.const(0), K.const(kw_), tap)
    if dw == 1:   # a whole row of the window inside the image: kw * C contiguous bytes
        first = ox * sw - pl
        row_inside = K.If(
            K.all_of([K.binary(">=", first, 0), K.binary("<", first + (kw_ - 1), w_)]),
            [K.Let(iw, first), K.Let(w0, kh * kw_ * cw), at_pixel] + copy(kw_ * cw),
            [row_inside])
    window_row = [K.Let(ih, oy * sh + kh * dh - pt),
                  K.If(K.all_of([K.binary(">=", ih, 0), K.binary("<", ih, h_)]), [row_inside],
                       [K.Let(w0, kh * kw_ * cw)] + zeros(kw_ * cw))]
    row = [K.Let(oy, (m % per_image) // ow_), K.Let(ox, m % ow_),
           K.For(kh, K.const(0), K.const(kh_), window_row)]
    w = names.var("w")
    past = [K.For(w, K.const(0), K.const(k4), [K.Store(apack, i * k4 + w, K.const(0, I32))])]
    if rowsum is not None:
        row += [K.Store(rowsum, i, K.const(0, I32)), K.For(w, K.const(0), K.const(k4), [
            K.Store(rowsum, i, K.Load(rowsum, i) + _byte_sum(K.Load(apack, i * k4 + w)))])]
        past.append(K.Store(rowsum, i, K.const(0, I32)))
    return [K.For(i, K.const(0), K.const(mr), [
        K.Let(m, m0 + i), K.If(K.binary("<", m, m_total), row, past)])]


def lower_int8_gemm(ctx: LowerContext, group: FusedGroup,
                    s: Int8GemmSchedule | Int8ConvNhwcSchedule
                    ) -> list[K.Stmt]:
    """The VNNI GEMM of a qmatmul or qconv2d group (see the module docstring)."""
    node = group.anchor
    names = ctx.names
    m_total, k_, n_ = gemm_shape(node)
    mr, nr = min(s.mr, m_total), s.nv * LANES
    k4 = -(-k_ // 4)
    panels = -(-n_ // nr)
    per_task = min(s.panels, panels)
    groups = -(-panels // per_task)
    row_tiles = -(-m_total // mr)
    _, d = corrections(node)
    needs_rowsum = bool(np.any(d))
    out = ctx.buf(group_output(ctx, group))
    bpack = _words(ctx, node.inputs[1], panels * k4 * nr, "bw")
    fix = _words(ctx, node.inputs[2], 2 * n_, "fix")
    tile = _local(ctx, "tile", mr * nr)
    rowsum = _local(ctx, "rowsum", mr) if needs_rowsum else None

    t = names.var("task")
    g, rt = t // row_tiles, t % row_tiles
    m0 = names.var("m0")
    body: list[K.Stmt] = [K.Let(m0, rt * mr)]
    direct = reads_a_in_place(node)
    if direct:
        a_words = _words(ctx, node.inputs[0], m_total * k_ // 4, "aw")
        flip = node.inputs[0].dtype is DType.int8
        tail = m_total % mr
        full_fn = microkernel(mr, s.nv, k_ // 4, 1, flip)
        tail_fn = microkernel(tail, s.nv, k_ // 4, 1, flip) if tail else None

        def run(p: K.Expr) -> list[K.Stmt]:
            args = [K.const(k4), (a_words, m0 * (k_ // 4)), (bpack, p * (k4 * nr)),
                    (tile, K.const(0))]
            if tail_fn is None:
                return [K.Invoke(full_fn, args)]
            return [K.If(K.binary("<=", m0 + mr, m_total), [K.Invoke(full_fn, args)],
                         [K.Invoke(tail_fn, list(args))])]
        if rowsum is not None:
            rows = K.minimum(mr, m_total - m0)
            body += _row_sums_dynamic(ctx, node, m0, rows, k_, rowsum)
    else:
        apack = _local(ctx, "apack", k4 * mr)
        if is_nhwc(node):
            fn = microkernel(mr, s.nv, k4, 1, False)
            body += pack_rows_nhwc(ctx, node, m0, mr, apack, rowsum)
        else:
            fn = microkernel(mr, s.nv, 1, mr, False)
            body += _pack_rows(ctx, node, m0, mr, k_, apack, rowsum)

        def run(p: K.Expr) -> list[K.Stmt]:
            return [K.Invoke(fn, [K.const(k4), (apack, K.const(0)), (bpack, p * (k4 * nr)),
                                  (tile, K.const(0))])]

    p = names.var("panel")
    i, j = names.var("i"), names.var("j")
    m, col = names.var("m"), names.var("n")
    acc = names.var("acc", I32)
    correction: K.Expr = K.Load(fix, col)
    if node.attrs["a_zero_point"] is None:
        factor = names.var("a_factor", I32)
        body.insert(0, K.Let(factor, a_zero_point(ctx, node)
                             + K.const(_shift(node.inputs[0].dtype), I32)))
        correction = correction * factor
    value: K.Expr = K.Load(tile, i * nr + j) + correction
    if rowsum is not None:
        value = value + K.Load(rowsum, i) * K.Load(fix, col + n_)
    if node.op == "qmatmul" or is_nhwc(node):
        out_at = m * n_ + col
    else:
        plane = node.output.shape[2] * node.output.shape[3]
        out_at = ((m // plane) * n_ + col) * plane + m % plane
    store = [K.Let(col, p * nr + j), K.Let(acc, value),
             K.Store(out, out_at, finish(ctx, node, acc, col))]
    epilogue = K.For(i, K.const(0), K.minimum(mr, m_total - m0), [
        K.Let(m, m0 + i),
        K.For(j, K.const(0), K.minimum(nr, n_ - p * nr), store, "vector")])
    body.append(K.For(p, g * per_task, K.minimum(panels, (g + 1) * per_task),
                      run(p) + [epilogue]))
    return [K.For(t, K.const(0), K.const(groups * row_tiles), body, "parallel")]


def _row_sums_dynamic(ctx: LowerContext, node: Node, m0: K.Expr, rows: K.Expr, k_: int,
                      rowsum: K.Buffer) -> list[K.Stmt]:
    """rowsum[i] = sum_k u(row m0+i, k) for the `rows` rows of this tile inside M."""
    names = ctx.names
    i, kk = names.var("i"), names.var("kk")
    u = K.cast(ctx.load(node.inputs[0], (m0 + i) * k_ + kk), I32) \
        + K.const(_shift(node.inputs[0].dtype), I32)
    return [K.For(i, K.const(0), rows, [
        K.Store(rowsum, i, K.const(0, I32)),
        K.For(kk, K.const(0), K.const(k_), [K.Store(rowsum, i, K.Load(rowsum, i) + u)])])]
