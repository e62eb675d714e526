"""A fused epilogue applied by the microkernel to its accumulators, before they are stored.

The GEMM's output is seen as [M, N] (rows: pixels or matrix rows, columns: channels). Each
operand of the chain is classified against it: a literal (one element), a column vector
([1, N]: a bias, a per-channel scale), a full tile ([M, N]: a residual) or a row scalar
([M, 1]). The microkernel function takes one pointer per operand, offset by the caller to
the tile's origin, and applies the chain to each accumulator on the way out:

    c{i}_{v} = max(c{i}_{v} + bias[v*16 ...] + res[i*N + v*16 ...], 0)

So the tile is written once, finished, instead of written, read back and rewritten. The
chain is the ops' scalar definitions (scalar.py) with vector operands (gemm_epilogue); an op
without a vector form means no TileEpilogue, and the caller finishes the tile in memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Sequence

from ...compiler.dtypes import DType
from ...compiler.ir import Value
from .. import kernel_ir as K
from .common import Step
from .gemm_epilogue import vectorize_expr
from .scalar import scalar_expr

@dataclass
class TileEpilogue:
    """The steps with each operand's kind ('col', 'full' or 'row'); literals are inlined."""

    steps: list[Step]
    operands: list[tuple[Value, str]]
    signature: str
    n: int          # columns of the [M, N] output: the row stride of 'full' operands

    @property
    def tag(self) -> str:
        """A short name part telling epilogues apart (function names include it)."""
        ops = "_".join(op for op, *_ in self.steps)
        digest = hashlib.sha1(self.signature.encode()).hexdigest()[:6]
        return f"{ops}_{digest}"

    def params(self) -> list[K.Buffer]:
        return [K.Buffer(f"e{j}", DType.float32, 0, "param") for j in range(len(self.operands))]

    def apply(self, acc: K.Expr, i: int, v: int, lanes: int, ldc: K.Expr,
              params: list[K.Buffer], names: K.Names) -> tuple[list[K.Stmt], K.Expr] | None:
        """The chain on accumulator (row i, vector v): local definitions and the result;
        None when some op has no vector form."""
        where = {id(value): (param, kind) for (value, kind), param
                 in zip(self.operands, params)}
        stmts: list[K.Stmt] = []
        current = acc
        for op, inputs, attrs, dtype in self.steps:
            args: list[K.Expr] = []
            varies: dict[int, bool] = {}
            for value in inputs:
                if value is None:
                    args.append(current)
                    continue
                if id(value) not in where:
                    args.append(K.const(value.data.reshape(()).item(), DType.float32))
                    continue
                param, kind = where[id(value)]
                index = {"col": K.const(v * lanes), "full": K.const(i * self.n + v * lanes),
                         "row": K.const(i)}[kind]
                args.append(K.Load(param, index))
                varies[id(param)] = kind != "row"
            vec = vectorize_expr(scalar_expr(op, args, attrs, dtype), lanes, varies)
            if vec is None:
                return None
            if not isinstance(vec, (K.VecVar, K.VecLoad, K.Broadcast)):
                local = K.VecVar(names.var("ev").name, lanes)
                stmts.append(K.Let(local, vec))
                vec = local
            current = vec
        return stmts, current

    def arguments(self, row0: K.Expr, col0: K.Expr, n_cols: int,
                  buffer: Callable[[Value], K.Buffer]) -> list[tuple[K.Buffer, K.Expr]]:
        """Each operand's address at the tile whose top-left output is (row0, col0)."""
        args = []
        for value, kind in self.operands:
            at = {"col": col0, "full": row0 * n_cols + col0, "row": row0}[kind]
            args.append((buffer(value), at))
        return args


def tile_epilogue(steps: list[Step], out_shape: Sequence[int],
                  shape_of: Callable[[Value], Sequence[int]], lanes: int
                  ) -> TileEpilogue | None:
    """The steps as a TileEpilogue over an [M, N] output (`out_shape`), or None when an
    operand does not fold to [1, N], [M, N], [M, 1] or one element, or an op has no vector
    form."""
    if not steps:
        return None
    m, n = out_shape
    operands: list[tuple[Value, str]] = []
    seen: set[int] = set()
    parts: list[str] = []
    for op, inputs, attrs, dtype in steps:
        if dtype is not DType.float32:
            return None
        kinds = []
        for value in inputs:
            if value is None:
                kinds.append("acc")
                continue
            if value.dtype is not DType.float32:
                return None
            if value.type.numel == 1 and value.is_constant:
                kinds.append(repr(float(value.data.reshape(()).item())))
                continue
            shape = list(shape_of(value))
            kind = {(m, 1): "row", (1, n): "col", (m, n): "full"}.get(tuple(shape))
            if kind is None:
                return None
            if id(value) not in seen:
                seen.add(id(value))
                operands.append((value, kind))
            kinds.append(f"{kind}{[id(v) for v, _ in operands].index(id(value))}")
        parts.append(f"{op}({','.join(kinds)}){sorted(attrs.items())}")
    epilogue = TileEpilogue(steps, operands, f"n={n};" + ";".join(parts), n)
    probe = epilogue.apply(K.VecVar("probe", lanes), 0, 0, lanes, K.Var("ldc"),
                           epilogue.params(), K.Names())
    return epilogue if probe is not None else None
