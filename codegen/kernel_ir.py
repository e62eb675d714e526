"""The kernel IR: a small loop-level language that every op family lowers to once.

Expressions are immutable trees (constants, variables, loads, arithmetic, intrinsic calls,
calls of shared functions, selects, casts, bit reinterpretations); statements are loops,
stores, local declarations and conditionals. A Kernel is one fused group: buffers it
touches plus a body whose first statement may be a parallel loop (its iterations are split
across the runtime's threads). Renderers print it for a target.

The builders below fold trivial arithmetic (x*1, x+0, constant operands) so the printed code
stays readable; they never change meaning.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any, Sequence, Union

import numpy as np

from ..compiler.dtypes import DType

INDEX = DType.int64


# -- expressions -----------------------------------------------------------------------------

class Expr:
    """Base of expressions; every expression has a dtype."""

    dtype: DType

    def __add__(self, other: "ExprLike") -> "Expr":
        return binary("+", self, other)

    def __radd__(self, other: "ExprLike") -> "Expr":
        return binary("+", other, self)

    def __sub__(self, other: "ExprLike") -> "Expr":
        return binary("-", self, other)

    def __rsub__(self, other: "ExprLike") -> "Expr":
        return binary("-", other, self)

    def __mul__(self, other: "ExprLike") -> "Expr":
        return binary("*", self, other)

    def __rmul__(self, other: "ExprLike") -> "Expr":
        return binary("*", other, self)

    def __floordiv__(self, other: "ExprLike") -> "Expr":
        return binary("/", self, other)   # index arithmetic: operands are non-negative

    def __truediv__(self, other: "ExprLike") -> "Expr":
        return binary("/", self, other)

    def __mod__(self, other: "ExprLike") -> "Expr":
        return binary("%", self, other)


ExprLike = Union[Expr, int, float, bool]


@dataclass(frozen=True, eq=False)
class Const(Expr):
    value: Union[int, float, bool]
    dtype: DType = INDEX


@dataclass(frozen=True, eq=False)
class Var(Expr):
    name: str
    dtype: DType = INDEX


class Storage(str, enum.Enum):
    """Where a Buffer's elements live. A str enum, like LoopKind: `buffer.storage ==
    "local"` keeps working and prints the plain name."""

    INPUT = "input"          # the caller's input #location
    OUTPUT = "output"        # the caller's output #location
    ARENA = "arena"          # byte offset into the session's planned arena
    WEIGHT = "weight"        # byte offset into the weights blob
    PREPARED = "prepared"    # byte offset into the arena's region made at session creation
    LOCAL = "local"          # an array of `numel` elements private to one task (the stack)
    PARAM = "param"          # a pointer parameter of a shared function (a microkernel)
    SHARED = "shared"        # shared by the threads of one GPU block (no CPU renderer)

    __str__ = str.__str__
    __format__ = str.__format__

    @property
    def scope(self) -> "MemoryScope":
        if self is Storage.LOCAL:
            return MemoryScope.LOCAL
        return MemoryScope.SHARED if self is Storage.SHARED else MemoryScope.GLOBAL


class MemoryScope(str, enum.Enum):
    """Who sees a buffer: every task (global memory), the threads of one block (a GPU's
    shared memory), or one task (registers and stack)."""

    GLOBAL = "global"
    SHARED = "shared"
    LOCAL = "local"

    __str__ = str.__str__
    __format__ = str.__format__


@dataclass(frozen=True, eq=False)
class Buffer:
    """A tensor a kernel reads or writes: `numel` elements of `dtype` in `storage` (a
    Storage or its plain name), at `location` (a slot or byte offset, per Storage)."""

    name: str
    dtype: DType
    numel: int
    storage: Storage
    location: int = 0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "storage", Storage(self.storage))
        except ValueError:
            allowed = ", ".join(repr(k.value) for k in Storage)
            raise ValueError(f"unknown buffer storage {self.storage!r}: expected one of "
                             f"{allowed}") from None

    @property
    def scope(self) -> MemoryScope:
        return self.storage.scope


@dataclass(frozen=True, eq=False)
class Load(Expr):
    buffer: Buffer
    index: Expr

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self.buffer.dtype


@dataclass(frozen=True, eq=False)
class Binary(Expr):
    """Arithmetic (+ - * / %), min/max, comparisons (< <= > >= == !=), logic (&& || ^^) and,
    on integers and bools, bitwise ops (& | ^) and shifts (<< >>, arithmetic for signed
    types). On vectors, a comparison is a vector of bools and & | ^ combine such masks."""

    op: str
    a: Expr
    b: Expr
    dtype: DType


@dataclass(frozen=True, eq=False)
class Unary(Expr):
    op: str   # "-" or "!"
    x: Expr
    dtype: DType


@dataclass(frozen=True, eq=False)
class Call(Expr):
    """A math intrinsic by its generic name (exp, sqrt, tanh, erf, floor, ceil, round, ...)."""

    fn: str
    args: tuple[Expr, ...]
    dtype: DType


@dataclass(frozen=True, eq=False)
class Select(Expr):
    cond: Expr
    a: Expr
    b: Expr
    dtype: DType


@dataclass(frozen=True, eq=False)
class Cast(Expr):
    x: Expr
    dtype: DType


@dataclass(frozen=True, eq=False)
class Bitcast(Expr):
    """The bits of `x` read as `dtype` (e.g. a float32's bits as an int32), lane by lane:
    `lanes` must be x's lanes and `dtype` as wide as x's dtype (the verifier checks both)."""

    x: Expr
    dtype: DType
    lanes: int = 1


COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
LOGICAL = ("&&", "||", "^^")
BITWISE = ("&", "|", "^", "<<", ">>")


def const(value: Union[int, float, bool], dtype: DType = INDEX) -> Const:
    if dtype.is_float:
        return Const(float(value), dtype)
    if dtype is DType.bool:
        return Const(bool(value), dtype)
    return Const(int(value), dtype)


def lowest(dtype: DType) -> Const:
    """The identity of max: -inf for floats, the smallest value for integers."""
    if dtype.is_float:
        return const(float("-inf"), dtype)
    return const(0 if dtype is DType.bool else int(np.iinfo(dtype.numpy).min), dtype)


def highest(dtype: DType) -> Const:
    """The identity of min: +inf for floats, the largest value for integers."""
    if dtype.is_float:
        return const(float("inf"), dtype)
    return const(1 if dtype is DType.bool else int(np.iinfo(dtype.numpy).max), dtype)


def as_expr(x: ExprLike, dtype: DType = INDEX) -> Expr:
    return x if isinstance(x, Expr) else const(x, dtype)


def binary(op: str, a: ExprLike, b: ExprLike) -> Expr:
    """Build `a op b`, folding constants and identities (x+0, x*1, x*0 for indices)."""
    dtype = a.dtype if isinstance(a, Expr) else b.dtype if isinstance(b, Expr) else INDEX
    a, b = as_expr(a, dtype), as_expr(b, dtype)
    result_dtype = DType.bool if op in COMPARISONS + LOGICAL else a.dtype
    if isinstance(a, Const) and isinstance(b, Const) and a.dtype is INDEX and b.dtype is INDEX:
        return const(_fold_int(op, a.value, b.value), result_dtype)
    if op == "+" and _is(b, 0):
        return a
    if op == "+" and _is(a, 0):
        return b
    if op == "-" and _is(b, 0):
        return a
    if op == "*" and (_is(a, 0) or _is(b, 0)) and a.dtype is INDEX:
        return const(0)
    if op == "*" and _is(b, 1):
        return a
    if op == "*" and _is(a, 1):
        return b
    if op in ("/",) and _is(b, 1):
        return a
    if op == "%" and _is(b, 1) and a.dtype is INDEX:
        return const(0)
    return Binary(op, a, b, result_dtype)


def _is(e: Expr, value: int) -> bool:
    return isinstance(e, Const) and e.dtype is not DType.bool and e.value == value


def _fold_int(op: str, a: int, b: int):
    table = {"+": a + b, "-": a - b, "*": a * b, "min": min(a, b), "max": max(a, b),
             "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}
    if op in table:
        return table[op]
    if op == "/":
        return int(a / b)
    if op == "%":
        return a - int(a / b) * b
    raise ValueError(op)


def minimum(a: ExprLike, b: ExprLike) -> Expr:
    return binary("min", a, b)


def maximum(a: ExprLike, b: ExprLike) -> Expr:
    return binary("max", a, b)


def select(cond: Expr, a: ExprLike, b: ExprLike) -> Expr:
    dtype = a.dtype if isinstance(a, Expr) else b.dtype if isinstance(b, Expr) else INDEX
    if isinstance(cond, Const):
        return as_expr(a if cond.value else b, dtype)
    return Select(cond, as_expr(a, dtype), as_expr(b, dtype), dtype)


def call(fn: str, *args: Expr) -> Expr:
    return Call(fn, tuple(args), args[0].dtype)


def cast(x: Expr, dtype: DType) -> Expr:
    if x.dtype is dtype:
        return x
    if isinstance(x, Const):
        return const(x.value, dtype)
    return Cast(x, dtype)


def bitcast(x: Expr, dtype: DType) -> Expr:
    """The bits of `x` as `dtype`, with x's lanes (x itself when it already is `dtype`)."""
    return x if x.dtype is dtype else Bitcast(x, dtype, lanes_of(x))


def all_of(conds: Sequence[Expr]) -> Expr:
    """Logical and of `conds`, dropping those known true."""
    result: Expr = const(True, DType.bool)
    for c in conds:
        if isinstance(c, Const) and c.value:
            continue
        result = c if isinstance(result, Const) else binary("&&", result, c)
    return result


# -- statements ------------------------------------------------------------------------------

class Stmt:
    """Base of statements."""


class LoopKind(str, enum.Enum):
    """How a For's iterations run. A str enum, so `loop.kind == "vector"` and printing a kind
    give the plain name renderers and existing callers use."""

    SERIAL = "serial"        # one after another
    PARALLEL = "parallel"    # the kernel's task loop: iterations split across threads
    VECTOR = "vector"        # innermost and contiguous: a hint to vectorize
    UNROLLED = "unroll"      # a hint to unroll
    THREAD = "thread"        # bound to a GPU thread axis (For.tag names it, e.g. threadIdx.x)

    __str__ = str.__str__
    __format__ = str.__format__

    @classmethod
    def of(cls, kind: Union["LoopKind", str]) -> "LoopKind":
        """`kind` as a LoopKind; ValueError naming the allowed kinds for an unknown one."""
        try:
            return cls(kind)
        except ValueError:
            allowed = ", ".join(repr(k.value) for k in cls)
            raise ValueError(f"unknown loop kind {kind!r}: expected one of {allowed}") from None


@dataclass(eq=False)
class For(Stmt):
    """for var in [start, stop): body, its iterations run as `kind` says (a LoopKind or its
    plain name). `tag` names the hardware axis a THREAD loop is bound to (e.g. "threadIdx.x")
    for renderers that bind loops to threads; CPU renderers ignore it."""

    var: Var
    start: Expr
    stop: Expr
    body: list[Stmt]
    kind: LoopKind = LoopKind.SERIAL
    tag: str | None = None

    def __post_init__(self) -> None:
        self.kind = LoopKind.of(self.kind)


@dataclass(eq=False)
class Store(Stmt):
    buffer: Buffer
    index: Expr
    value: Expr


@dataclass(eq=False)
class Let(Stmt):
    """Declare a mutable local scalar `var` = value."""

    var: Var
    value: Expr


@dataclass(eq=False)
class Assign(Stmt):
    var: Var
    value: Expr


@dataclass(eq=False)
class If(Stmt):
    cond: Expr
    then: list[Stmt]
    orelse: list[Stmt] = field(default_factory=list)


@dataclass(eq=False)
class Comment(Stmt):
    text: str


@dataclass(eq=False)
class Prefetch(Stmt):
    """A hint to bring buffer[index]'s cache line in ahead of use (no effect on results)."""

    buffer: Buffer
    index: Expr


@dataclass(eq=False)
class Kernel:
    """One fused group as a function. If body[0] is a For of kind 'parallel', its iterations
    are the kernel's tasks and the runtime splits them across threads."""

    name: str
    doc: str
    buffers: list[Buffer]
    body: list[Stmt]

    @property
    def parallel_loop(self) -> For | None:
        first = self.body[0] if len(self.body) == 1 else None
        return first if isinstance(first, For) and first.kind is LoopKind.PARALLEL else None


class Names:
    """Fresh, readable local variable names within one kernel."""

    def __init__(self) -> None:
        self.used: dict[str, int] = {}

    def var(self, hint: str, dtype: DType = INDEX) -> Var:
        count = self.used.get(hint, 0)
        self.used[hint] = count + 1
        return Var(hint if count == 0 else f"{hint}{count}", dtype)


def loop_nest(names: Names, extents: Sequence[int], hints: Sequence[str],
              body_fn, outer_kind: LoopKind | str = LoopKind.SERIAL,
              inner_kind: LoopKind | str = LoopKind.SERIAL) -> list[Stmt]:
    """Nested loops over `extents` (outermost first); body_fn(vars) gives the innermost
    statements. Loops of extent 1 are dropped (their variable is the constant 0)."""
    vars_: list[Expr] = []
    loops: list[tuple[Var, int]] = []
    for extent, hint in zip(extents, hints):
        if extent == 1:
            vars_.append(const(0))
        else:
            v = names.var(hint)
            vars_.append(v)
            loops.append((v, extent))
    body = list(body_fn(vars_))
    for depth in range(len(loops) - 1, -1, -1):
        v, extent = loops[depth]
        kind = (outer_kind if depth == 0 else inner_kind if depth == len(loops) - 1
                else LoopKind.SERIAL)
        body = [For(v, const(0), const(extent), body, kind)]
    return body


# -- vectors (SIMD): lanes of one scalar dtype, for microkernels -------------------------------
# A vector expression has `lanes` > 1. Arithmetic on vectors reuses Binary (+ - * with both
# operands vectors of the same lanes, or a vector and a Broadcast); Let/Assign of a VecVar
# declare and update a vector local. Renderers print them with their target's vector types
# (C: GCC/Clang vector extensions).

@dataclass(frozen=True, eq=False)
class VecVar(Expr):
    """A vector local (e.g. one accumulator register of a microkernel)."""

    name: str
    lanes: int
    dtype: DType = DType.float32


@dataclass(frozen=True, eq=False)
class VecLoad(Expr):
    """`lanes` consecutive elements of `buffer` from `index` (no alignment assumed)."""

    buffer: Buffer
    index: Expr
    lanes: int

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self.buffer.dtype


@dataclass(frozen=True, eq=False)
class Broadcast(Expr):
    """A scalar repeated in every lane."""

    x: Expr
    lanes: int

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self.x.dtype


@dataclass(eq=False)
class VecStore(Stmt):
    """Store vector `value` to `lanes` consecutive elements of `buffer` from `index`."""

    buffer: Buffer
    index: Expr
    value: Expr
    lanes: int


@dataclass(frozen=True, eq=False)
class Dot4(Expr):
    """Integer dot products of 4-byte groups, lane by lane: each 32-bit lane of `a` holds
    four unsigned bytes and of `b` four signed bytes, and lane i of the result is
    acc[i] + sum_j a[i].u8[j] * b[i].s8[j], in int32 (wrapping, never saturating). acc, a
    and b are int32 vectors of `lanes` lanes. x86-64: vpdpbusd (AVX512-VNNI, 16 lanes);
    arm64's sdot/udot take operands of one signedness and are another primitive."""

    acc: Expr
    a: Expr
    b: Expr
    lanes: int

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return DType.int32


def lanes_of(e: Expr) -> int:
    """How many lanes an expression has (1 for scalars)."""
    if isinstance(e, (VecVar, VecLoad, Broadcast, Bitcast, Apply, Dot4)):
        return e.lanes
    if isinstance(e, Binary):
        return max(lanes_of(e.a), lanes_of(e.b))
    if isinstance(e, Call):
        return max(lanes_of(a) for a in e.args)
    if isinstance(e, Unary):
        return lanes_of(e.x)
    if isinstance(e, Select):
        return max(lanes_of(e.cond), lanes_of(e.a), lanes_of(e.b))
    return 1


def fma(acc: Expr, a: Expr, b: Expr) -> Expr:
    """acc + a * b on vectors (the C compiler contracts it into one fused multiply-add)."""
    return Binary("+", acc, Binary("*", a, b, a.dtype), acc.dtype)


# -- shared functions: a helper emitted once per module and called from kernels ---------------
# A GEMM microkernel is the same code for every node with the same tile: kernels call one
# static function instead of each inlining its own copy (C compile time stays flat). Vector
# math (exp, erf: lower/vector_math.py) is a Function with a result, called in expressions.

@dataclass(eq=False)
class Function:
    """A static helper shared by kernels, rendered once per module under `name` (two
    Functions with one name must have one body). `params` are Vars, VecVars and Buffers of
    storage 'param' (pointers). With a `result` (an expression over the body's locals) it
    returns that value and is called by Apply; without one it returns nothing and is called
    by Invoke."""

    name: str
    params: list[Union[Var, VecVar, Buffer]]
    body: list[Stmt]
    doc: str = ""
    result: Expr | None = None


@dataclass(frozen=True, eq=False)
class Apply(Expr):
    """The value of Function `fn` (one with a result) on `args`, one Expr per parameter."""

    fn: Function
    args: tuple[Expr, ...]

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self._result.dtype

    @property
    def lanes(self) -> int:
        return lanes_of(self._result)

    @property
    def _result(self) -> Expr:
        if self.fn.result is None:
            raise ValueError(f"function {self.fn.name} returns nothing: call it with Invoke")
        return self.fn.result


@dataclass(eq=False)
class Invoke(Stmt):
    """Call `fn`: one argument per parameter, an Expr for a Var, an address (buffer, element
    index) for a Buffer."""

    fn: Function
    args: list[Union[Expr, tuple[Buffer, Expr]]]


# -- walking: one visitor base for analyses and renderers ------------------------------------

class KernelVisitor:
    """Walks kernel IR: `visit(node)` calls `visit_<ClassName>(node)` when the subclass
    defines it, else `generic_visit`, which visits the node's child statements and
    expressions (fields holding a Stmt, an Expr, or lists/tuples of them, such as Invoke's
    (buffer, index) arguments). Buffers and the Function of an Invoke or an Apply are
    leaves: a walk that needs a callee's body visits `node.fn.body` (and `node.fn.result`)
    itself. Override a visit_ method and call `generic_visit` from it to keep walking
    below."""

    def visit(self, node: Any) -> Any:
        """Dispatch `node` (a Stmt, an Expr, a Kernel, or a list of statements)."""
        if isinstance(node, (list, tuple)):
            for item in node:
                self.visit(item)
            return None
        method = getattr(self, f"visit_{type(node).__name__}", self.generic_visit)
        return method(node)

    def generic_visit(self, node: Any) -> None:
        """Visit every child statement and expression of `node`, in field order."""
        for f in fields(node):
            self._visit_children(getattr(node, f.name))

    def _visit_children(self, value: Any) -> None:
        if isinstance(value, (Stmt, Expr)):
            self.visit(value)
        elif isinstance(value, (list, tuple)):
            for item in value:
                self._visit_children(item)


class _CalledFunctions(KernelVisitor):
    def __init__(self) -> None:
        self.found: dict[str, Function] = {}
        self.entered: set[str] = set()

    def visit_Invoke(self, s: Union[Invoke, Apply]) -> None:
        fn = s.fn
        if fn.name not in self.entered:
            self.entered.add(fn.name)
            self.visit(fn.body)
            if fn.result is not None:
                self.visit(fn.result)
            self.found[fn.name] = fn
        self.generic_visit(s)

    visit_Apply = visit_Invoke


def functions_called(body: list[Stmt]) -> list[Function]:
    """The Functions `body` calls (Invoke, Apply), directly or through other Functions, each
    once (by name), a callee before its callers and otherwise first use first: the order a
    module defines them in."""
    walk = _CalledFunctions()
    walk.visit(body)
    return list(walk.found.values())
