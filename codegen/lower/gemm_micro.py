"""The register-blocked microkernel as one shared static function per shape and access pattern.

Every GEMM-shaped lowering runs the same inner loop; emitted inline, each node got its own
copy and C compile time grew with the model. Here the loop is a K.Function named after what
distinguishes it (lanes, rows, vectors, the operands' constant strides), emitted once per
module and invoked with base addresses:

    kiln_mk_v8_6x2_a1_6_b16_8(depth, &A[a_base], &B[b_base], &C[c_base], ldc, accumulate)
        c{i}_{v} = accumulate ? C[i*ldc + v*8 ...] : 0
        for k in [0, depth):  b{v} = B[k*16 + v*8 ...];  a{i} = splat(A[i*1 + k*6]);  c += a*b
        C[i*ldc + v*8 ...] = c{i}_{v}

`shared_call` recovers that form from a caller's index functions (a_at, b_at): it reads
each index as an affine sum of loop variables and opaque terms, checks the strides are
constants, and returns None where they are not (the caller then inlines the loop).
B's k step may also go through an offset table (B[koff[k] + v*8]) as the direct conv does.
`shared_microkernel` is the same call with conv_band.band_microkernel's signature (a k
range, an accumulator with a row stride, zero or accumulate), for the conv lowerings.
"""

from __future__ import annotations

from typing import Callable

from ...compiler.dtypes import DType
from .. import kernel_ir as K
from .tile_epilogue import TileEpilogue

#: an affine index: term key -> coefficient ("" is the constant term) and key -> term
Affine = tuple[dict[str, int], dict[str, K.Expr]]


def _key(e: K.Expr) -> str:
    """A structural key: equal keys mean equal expressions (unknown kinds are unique)."""
    if isinstance(e, K.Const):
        return repr(e.value)
    if isinstance(e, K.Var):
        return e.name
    if isinstance(e, K.Load):
        return f"{e.buffer.name}@{id(e.buffer)}[{_key(e.index)}]"
    if isinstance(e, K.Binary):
        return f"({_key(e.a)}{e.op}{_key(e.b)})"
    return f"#{id(e)}"


def affine(e: K.Expr) -> Affine:
    """`e` (an index expression) as sum(coef * term) + constant; a non-affine part of it
    becomes one opaque term."""
    if isinstance(e, K.Const) and e.dtype is K.INDEX:
        return {"": int(e.value)}, {}
    if isinstance(e, K.Binary) and e.op in ("+", "-"):
        (ca, ta), (cb, tb) = affine(e.a), affine(e.b)
        sign = 1 if e.op == "+" else -1
        coefs = dict(ca)
        for key, c in cb.items():
            coefs[key] = coefs.get(key, 0) + sign * c
        return {k: c for k, c in coefs.items() if c}, {**ta, **tb}
    if isinstance(e, K.Binary) and e.op == "*":
        (ca, ta), (cb, tb) = affine(e.a), affine(e.b)
        for c1, t1, c2 in ((ca, ta, cb), (cb, tb, ca)):
            if set(c2) <= {""}:
                scale = c2.get("", 0)
                return {k: c * scale for k, c in c1.items() if c * scale}, t1
    key = _key(e)
    return {key: 1}, {key: e}


def _uses(e: K.Expr, var: K.Var) -> bool:
    if isinstance(e, K.Var):
        return e.name == var.name
    if isinstance(e, (K.Load, K.VecLoad)):
        return _uses(e.index, var)
    if isinstance(e, K.Binary):
        return _uses(e.a, var) or _uses(e.b, var)
    if isinstance(e, (K.Unary, K.Cast, K.Broadcast)):
        return _uses(e.x, var)
    if isinstance(e, K.Call):
        return any(_uses(a, var) for a in e.args)
    if isinstance(e, K.Select):
        return _uses(e.cond, var) or _uses(e.a, var) or _uses(e.b, var)
    return False


def _rebuild(coefs: dict[str, int], terms: dict[str, K.Expr], drop: str) -> K.Expr:
    total: K.Expr = K.const(coefs.get("", 0))
    for key, c in coefs.items():
        if key not in ("", drop):
            total = total + terms[key] * c
    return total


def _minus(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    keys = set(a) | set(b)
    return {k: a.get(k, 0) - b.get(k, 0) for k in keys if a.get(k, 0) != b.get(k, 0)}


def _stride(rows: list[dict[str, int]]) -> int | None:
    """The constant step between consecutive affine indices, or None."""
    if len(rows) < 2:
        return 0
    step = _minus(rows[1], rows[0])
    if set(step) - {""}:
        return None
    s = step.get("", 0)
    for i in range(2, len(rows)):
        if _minus(rows[i], rows[0]) != ({"": s * i} if s * i else {}):
            return None
    return s


def microkernel_function(lanes: int, rows: int, nv: int, a_rs: int, a_ks: int,
                         b_ks: int | None, b_vs: int, segmented: bool = False,
                         epilogue: TileEpilogue | None = None,
                         prefetch: bool = False) -> K.Function:
    """The shared microkernel for a rows x (nv*lanes) tile: A[i*a_rs + k*a_ks] splatted,
    B[k*b_ks + v*b_vs] (b_ks None: B[koff[k] + v*b_vs]) loaded, C[i*ldc + v*lanes] stored
    (first loaded when `accumulate` is non-zero).

    segmented: K runs over `nseg` segments of `depth`, segment s reading A from s*a_seg
    on (B continues where the previous segment ended): a conv window row by row.
    epilogue: applied to the accumulators before the store when `finish` is non-zero.
    prefetch: every k step also prefetches what it loads of B from `pf` instead: a caller
    streaming weights from memory passes the next block of B it will need."""
    f32 = DType.float32
    b_tag = "ind" if b_ks is None else str(b_ks)
    name = f"kiln_mk_v{lanes}_{rows}x{nv}_a{a_rs}_{a_ks}_b{b_tag}_{b_vs}"
    name += "_seg" if segmented else ""
    name += f"_{epilogue.tag}" if epilogue is not None else ""
    name += "_pf" if prefetch else ""
    depth, ldc, accumulate, k = K.Var("depth"), K.Var("ldc"), K.Var("accumulate"), K.Var("k")
    nseg, a_seg, seg, finish = K.Var("nseg"), K.Var("a_seg"), K.Var("s"), K.Var("finish")
    a = K.Buffer("a", f32, 0, "param")
    b = K.Buffer("b", f32, 0, "param")
    c = K.Buffer("c", f32, 0, "param")
    koff = K.Buffer("koff", K.INDEX, 0, "param")
    accs = [[K.VecVar(f"c{i}_{v}", lanes) for v in range(nv)] for i in range(rows)]
    zero = K.Broadcast(K.const(0.0, f32), lanes)
    body: list[K.Stmt] = [K.Let(acc, zero) for row in accs for acc in row]
    body.append(K.If(K.binary("!=", accumulate, 0), [
        K.Assign(accs[i][v], K.VecLoad(c, ldc * i + v * lanes, lanes))
        for i in range(rows) for v in range(nv)]))
    kk = seg * depth + k if segmented else k
    a_at = seg * a_seg + k * a_ks if segmented else k * a_ks
    b_row = kk * b_ks if b_ks is not None else K.Load(koff, kk)
    bs = [K.VecVar(f"b{v}", lanes) for v in range(nv)]
    step: list[K.Stmt] = [K.Let(bv, K.VecLoad(b, b_row + v * b_vs, lanes))
                          for v, bv in enumerate(bs)]
    for i in range(rows):
        av = K.VecVar(f"a{i}", lanes)
        step.append(K.Let(av, K.Broadcast(K.Load(a, a_at + i * a_rs), lanes)))
        step += [K.Assign(accs[i][v], K.fma(accs[i][v], av, bs[v])) for v in range(nv)]
    pf = K.Buffer("pf", f32, 0, "param")
    if prefetch:
        step += [K.Prefetch(pf, b_row + v * b_vs) for v in range(nv)]
    loop: K.Stmt = K.For(k, K.const(0), depth, step)
    if segmented:
        loop = K.For(seg, K.const(0), nseg, [loop])
    body.append(loop)
    params: list = [depth, a, b] + ([koff] if b_ks is None else []) + [c, ldc, accumulate]
    if segmented:
        params += [nseg, a_seg]
    if prefetch:
        params.append(pf)
    if epilogue is not None:
        eparams = epilogue.params()
        names = K.Names()
        finishing: list[K.Stmt] = []
        for i in range(rows):
            for v in range(nv):
                lets, value = epilogue.apply(accs[i][v], i, v, lanes, ldc, eparams, names)
                finishing += lets + [K.Assign(accs[i][v], value)]
        body.append(K.If(K.binary("!=", finish, 0), finishing))
        params += [finish] + eparams
    body += [K.VecStore(c, ldc * i + v * lanes, accs[i][v], lanes)
             for i in range(rows) for v in range(nv)]
    doc = (f"GEMM microkernel: {rows}x{nv * lanes} tile, A stride (row {a_rs}, k {a_ks}), "
           f"B stride (k {b_tag}, vector {b_vs})")
    if segmented:
        doc += ", K in nseg segments of depth (A segment stride a_seg)"
    if epilogue is not None:
        doc += f", epilogue {' + '.join(op for op, *_ in epilogue.steps)} when finish"
    if prefetch:
        doc += ", prefetching the next block of B (pf)"
    return K.Function(name, params, body, doc)


def invoke(fn: K.Function, depth: K.ExprLike, a: tuple[K.Buffer, K.Expr],
           b: tuple[K.Buffer, K.Expr], c: tuple[K.Buffer, K.Expr], ldc: K.ExprLike,
           accumulate: K.ExprLike = 0, koff: tuple[K.Buffer, K.Expr] | None = None,
           segments: tuple[K.ExprLike, K.ExprLike] | None = None,
           finish: tuple[K.ExprLike, list[tuple[K.Buffer, K.Expr]]] | None = None,
           prefetch: tuple[K.Buffer, K.Expr] | None = None) -> K.Invoke:
    """A call of microkernel `fn` on the given base addresses; `segments` is (nseg, a_seg)
    of a segmented kernel, `finish` (flag, operand addresses) of one with an epilogue,
    `prefetch` the address a prefetching one reads ahead from."""
    args: list = [K.as_expr(depth), a, b] + ([koff] if koff is not None else [])
    args += [c, K.as_expr(ldc), K.as_expr(accumulate)]
    if segments is not None:
        args += [K.as_expr(segments[0]), K.as_expr(segments[1])]
    if prefetch is not None:
        args.append(prefetch)
    if finish is not None:
        args += [K.as_expr(finish[0])] + list(finish[1])
    return K.Invoke(fn, args)


def _analyze(lanes: int, rows: int, nv: int, a_at: Callable[[int, K.Expr], K.Expr],
             b_at: Callable[[K.Expr, int], K.Expr]):
    """(function, A address at k=0, B address at k=0, koff table or None, a_ks, b_ks) for
    a caller's index functions, or None where a stride is not constant."""
    k = K.Var("k_probe")
    a_loads = [a_at(i, k) for i in range(rows)]
    b_loads = [b_at(k, v) for v in range(nv)]
    if not all(isinstance(e, K.Load) and e.buffer is a_loads[0].buffer for e in a_loads) \
            or not all(isinstance(e, K.VecLoad) and e.buffer is b_loads[0].buffer
                       and e.lanes == lanes for e in b_loads):
        return None
    a_aff = [affine(e.index) for e in a_loads]
    b_aff = [affine(e.index) for e in b_loads]
    a_coefs, a_terms = a_aff[0]
    a_ks = a_coefs.get(k.name, 0)
    if any(_uses(t, k) for key, t in a_terms.items() if key != k.name) or a_ks == 0:
        return None
    a_rs = _stride([c for c, _ in a_aff])
    b_vs = _stride([c for c, _ in b_aff])
    if a_rs is None or b_vs is None:
        return None
    b_coefs, b_terms = b_aff[0]
    in_k = [key for key, t in b_terms.items() if key != k.name and _uses(t, k)]
    koff = None
    if not in_k and b_coefs.get(k.name, 0):
        b_ks: int | None = b_coefs[k.name]
        b_base = _rebuild(b_coefs, b_terms, k.name)
    elif len(in_k) == 1 and not b_coefs.get(k.name) and b_coefs[in_k[0]] == 1:
        table = b_terms[in_k[0]]
        if not (isinstance(table, K.Load) and isinstance(table.index, K.Var)
                and table.index.name == k.name):
            return None
        b_ks, koff = None, table.buffer
        b_base = _rebuild(b_coefs, b_terms, in_k[0])
    else:
        return None
    fn = microkernel_function(lanes, rows, nv, a_rs, a_ks, b_ks, b_vs)
    a = (a_loads[0].buffer, _rebuild(a_coefs, a_terms, k.name))
    return fn, a, (b_loads[0].buffer, b_base), koff, a_ks, b_ks


def shared_call(lanes: int, rows: int, nv: int, depth: int,
                a_at: Callable[[int, K.Expr], K.Expr],
                b_at: Callable[[K.Expr, int], K.Expr],
                out: K.Buffer, ldc: int) -> K.Invoke | None:
    """The microkernel over a caller's index functions as a call of the shared function
    (storing the tile to `out` with row stride `ldc`), or None where the accesses are not
    constant-stride (the caller inlines the loop then)."""
    found = _analyze(lanes, rows, nv, a_at, b_at)
    if found is None:
        return None
    fn, a, b, koff, _, _ = found
    return invoke(fn, depth, a, b, (out, K.const(0)), ldc, 0,
                  (koff, K.const(0)) if koff is not None else None)


def shared_microkernel(names: K.Names, tile, rows: int, k_lo: K.Expr, k_hi: K.Expr,
                       a_at, b_at, acc: K.Buffer, acc_at: K.Expr, row_stride: int,
                       zero_init: bool) -> list[K.Stmt] | None:
    """A call of the shared microkernel with conv_band.band_microkernel's meaning: accumulate
    a rows x nr tile over k in [k_lo, k_hi) into acc[acc_at + i*row_stride + j], from zero
    (zero_init) or from what acc holds. None where the strides are not constant."""
    found = _analyze(tile.lanes, rows, tile.nv, a_at, b_at)
    if found is None:
        return None
    fn, (abuf, a_base), (bbuf, b_base), koff, a_ks, b_ks = found
    a = (abuf, a_base + k_lo * a_ks)
    if koff is None:
        b, table = (bbuf, b_base + k_lo * b_ks), None
    else:
        b, table = (bbuf, b_base), (koff, k_lo)
    return [invoke(fn, k_hi - k_lo, a, b, (acc, acc_at), row_stride, 0 if zero_init else 1,
                   table)]
