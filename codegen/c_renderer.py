"""Print kernel IR as C11 (with GCC/Clang extensions): tables of operators and intrinsics,
one function per kernel, named after its fused group. CStyleRenderer holds what every
C-family language shares; CRenderer fills in its hooks for C (a CUDA renderer will too)."""

from __future__ import annotations

import math

from ..compiler.dtypes import DType
from . import kernel_ir as K

_BINARY = {"+": "+", "-": "-", "*": "*", "/": "/", "%": "%", "<": "<", "<=": "<=", ">": ">",
           ">=": ">=", "==": "==", "!=": "!=", "&&": "&&", "||": "||",
           "&": "&", "|": "|", "^": "^", "<<": "<<", ">>": ">>"}

#: generic intrinsic name -> C function, per float type (double drops the suffix); vector
#: exp and erf are kernel-IR Functions (lower/vector_math.py), called with K.Apply
_MATH = {"exp": "expf", "log": "logf", "sqrt": "sqrtf", "tanh": "tanhf", "erf": "kiln_erff",
         "exp_poly": "kiln_expf",
         "floor": "floorf", "ceil": "ceilf", "round": "nearbyintf", "sin": "sinf",
         "cos": "cosf", "abs": "fabsf", "log1p": "log1pf", "pow": "powf",
         "tan": "tanf", "asin": "asinf", "acos": "acosf", "atan": "atanf", "sinh": "sinhf",
         "cosh": "coshf", "asinh": "asinhf", "acosh": "acoshf", "atanh": "atanhf"}


def c_literal(value, dtype: DType) -> str:
    """A C literal of `dtype` for `value` (infinities and NaN included)."""
    if dtype.is_float:
        value = float(value)
        suffix = "f" if dtype is not DType.float64 else ""
        if math.isnan(value):
            return "NAN"
        if math.isinf(value):
            return "INFINITY" if value > 0 else "(-INFINITY)"
        text = repr(value)
        if "e" not in text and "." not in text:
            text += ".0"
        return f"{text}{suffix}" if value >= 0 else f"({text}{suffix})"
    if dtype is DType.bool:
        return "1" if value else "0"
    value = int(value)
    if value == -(2 ** 63):
        return "INT64_MIN"
    text = f"{value}LL" if abs(value) > 2 ** 31 - 1 else str(value)
    return text if value >= 0 else f"({text})"


class CStyleRenderer:
    """Prints kernel IR in a C-family language: expressions, statements and the layout of a
    kernel are shared; what differs between C, CUDA and their kin is asked of hooks, which
    a renderer for one language overrides: `signature` (a kernel's declaration),
    `task_loop` (how a kernel runs its tasks), `buffer_decl` (where a buffer's pointer comes
    from), `vector_type` / `vector_typedefs` (vector types), `math_function` (intrinsics),
    `loop_pragma`, `prefetch` and `function_head` (a shared function's declaration)."""

    name = "c-style"

    # -- hooks --------------------------------------------------------------------------------
    def signature(self, k: K.Kernel) -> str:
        raise NotImplementedError

    def task_loop(self, task: str) -> tuple[list[str], list[str]]:
        """(lines opening, lines closing) the loop over this invocation's task indices."""
        raise NotImplementedError

    def idle_tasks(self) -> list[str]:
        """Lines of a kernel without a parallel loop (its task range unused)."""
        return []

    def buffer_decl(self, b: K.Buffer, written: bool) -> str:
        raise NotImplementedError

    def vector_type(self, dtype: DType, lanes: int) -> str:
        raise NotImplementedError

    def vector_typedefs(self, nodes: list) -> list[str]:
        return []

    def math_function(self, fn: str, dtype: DType) -> str:
        raise NotImplementedError

    def loop_pragma(self, kind: K.LoopKind) -> list[str]:
        return []

    def prefetch(self, address: str) -> str:
        return ""

    def function_head(self, fn: K.Function, params: list[str]) -> str:
        """The declaration of shared function `fn` (its result's type is `value_type`)."""
        raise NotImplementedError

    def value_type(self, e: K.Expr) -> str:
        """The type of a local, parameter or result holding `e`: a vector type or a scalar."""
        lanes = K.lanes_of(e)
        return self.vector_type(e.dtype, lanes) if lanes > 1 else e.dtype.c_type

    # -- the shared printer ---------------------------------------------------------------

    def expr(self, e: K.Expr) -> str:
        """The text of an expression: the method `expr_<NodeClass>` prints each kind."""
        method = getattr(self, f"expr_{type(e).__name__}", None)
        if method is None:
            raise TypeError(f"cannot render {type(e).__name__}")
        return method(e)

    def expr_Const(self, e: K.Const) -> str:
        return c_literal(e.value, e.dtype)

    def expr_Var(self, e: K.Var) -> str:
        return e.name

    def expr_Load(self, e: K.Load) -> str:
        return f"{e.buffer.name}[{self.expr(e.index)}]"

    def expr_Unary(self, e: K.Unary) -> str:
        return f"({e.op}{self.expr(e.x)})"

    def expr_Select(self, e: K.Select) -> str:
        cond, a, b = self.expr(e.cond), self.expr(e.a), self.expr(e.b)
        if _is_vector(e.a):   # a bitwise blend on the mask
            mask = f"__typeof__({cond})"
            return f"((__typeof__({a}))(({cond} & ({mask}){a}) | (~{cond} & ({mask}){b})))"
        return f"({cond} ? {a} : {b})"

    def expr_Cast(self, e: K.Cast) -> str:
        return f"(({e.dtype.c_type}){self.expr(e.x)})"

    def expr_Bitcast(self, e: K.Bitcast) -> str:
        x = self.expr(e.x)
        if e.lanes > 1:   # a vector cast keeps the bits (GCC/Clang vector extensions)
            return f"(({self.vector_type(e.dtype, e.lanes)}){x})"
        return (f"((union {{ {e.x.dtype.c_type} from; {e.dtype.c_type} to; }})"
                f"{{ .from = {x} }}).to")

    def expr_Dot4(self, e: K.Dot4) -> str:
        if e.lanes != 16:
            raise TypeError(f"no C form of a {e.lanes}-lane integer dot product (vpdpbusd "
                            f"takes 16 int32 lanes)")
        vtype = self.vector_type(DType.int32, 16)
        acc, a, b = (f"(__m512i)({self.expr(x)})" for x in (e.acc, e.a, e.b))
        return f"(({vtype})_mm512_dpbusd_epi32({acc}, {a}, {b}))"

    def expr_Apply(self, e: K.Apply) -> str:
        return f"{e.fn.name}({', '.join(self.expr(a) for a in e.args)})"

    def expr_VecVar(self, e: K.VecVar) -> str:
        return e.name

    def expr_VecLoad(self, e: K.VecLoad) -> str:
        vtype = self.vector_type(e.dtype, e.lanes)
        return f"(*(const {vtype}_u *)&{e.buffer.name}[{self.expr(e.index)}])"

    def expr_Broadcast(self, e: K.Broadcast) -> str:
        vtype = self.vector_type(e.dtype, e.lanes)
        return f"({self.expr(e.x)} - ({vtype}){{}})"   # splat; x - 0 is exactly x, even -0

    def expr_Binary(self, e: K.Binary) -> str:
        a, b = self.expr(e.a), self.expr(e.b)
        if e.op in ("min", "max"):
            if e.a.dtype is K.INDEX:
                return f"kiln_i{e.op}({a}, {b})"
            cmp = "<" if e.op == "min" else ">"
            return f"({a} {cmp} {b} ? {a} : {b})"
        if e.op == "^^":
            return f"(!{a} != !{b})"
        if e.op == "%" and e.a.dtype.is_float:
            return f"fmod({a}, {b})" if e.a.dtype is DType.float64 else f"fmodf({a}, {b})"
        return f"({a} {_BINARY[e.op]} {b})"

    def expr_Call(self, e: K.Call) -> str:
        args = ", ".join(self.expr(a) for a in e.args)
        if K.lanes_of(e) > 1:
            raise TypeError(f"no vector form of intrinsic {e.fn!r}: vector math is a "
                            f"K.Function called with K.Apply (lower/vector_math.py)")
        if e.fn.startswith("kiln_"):   # a C prelude function (kiln_convert.h)
            return f"{e.fn}({args})"
        if not e.dtype.is_float:
            if e.fn == "abs":
                return f"kiln_iabs({args})"
            if e.fn in ("floor", "ceil", "round"):
                return args
            args = ", ".join(f"(double){self.expr(a)}" for a in e.args)
            return f"(({e.dtype.c_type}){self.math_function(e.fn, DType.float64)}({args}))"
        if e.dtype is DType.float16:
            return f"((_Float16){self.math_function(e.fn, DType.float32)}((float){args}))"
        return f"{self.math_function(e.fn, e.dtype)}({args})"

    def stmts(self, body: list[K.Stmt], indent: int) -> list[str]:
        lines: list[str] = []
        for s in body:
            lines += self.stmt(s, indent)
        return lines

    def stmt(self, s: K.Stmt, indent: int) -> list[str]:
        """The lines of a statement at `indent`: the method `stmt_<NodeClass>` prints each
        kind."""
        method = getattr(self, f"stmt_{type(s).__name__}", None)
        if method is None:
            raise TypeError(f"cannot render {type(s).__name__}")
        return method(s, "    " * indent, indent)

    def stmt_For(self, s: K.For, pad: str, indent: int) -> list[str]:
        head = (f"{pad}for (int64_t {s.var.name} = {self.expr(s.start)}; "
                f"{s.var.name} < {self.expr(s.stop)}; ++{s.var.name}) {{")
        pragma = [pad + line for line in self.loop_pragma(s.kind)]
        return pragma + [head] + self.stmts(s.body, indent + 1) + [f"{pad}}}"]

    def stmt_Store(self, s: K.Store, pad: str, indent: int) -> list[str]:
        return [f"{pad}{s.buffer.name}[{self.expr(s.index)}] = {self.expr(s.value)};"]

    def stmt_VecStore(self, s: K.VecStore, pad: str, indent: int) -> list[str]:
        vtype = self.vector_type(s.buffer.dtype, s.lanes)
        return [f"{pad}*({vtype}_u *)&{s.buffer.name}[{self.expr(s.index)}] = "
                f"{self.expr(s.value)};"]

    def stmt_Let(self, s: K.Let, pad: str, indent: int) -> list[str]:
        return [f"{pad}{self.value_type(s.var)} {s.var.name} = {self.expr(s.value)};"]

    def stmt_Assign(self, s: K.Assign, pad: str, indent: int) -> list[str]:
        return [f"{pad}{s.var.name} = {self.expr(s.value)};"]

    def stmt_If(self, s: K.If, pad: str, indent: int) -> list[str]:
        lines = [f"{pad}if ({self.expr(s.cond)}) {{"] + self.stmts(s.then, indent + 1)
        if s.orelse:
            lines += [f"{pad}}} else {{"] + self.stmts(s.orelse, indent + 1)
        return lines + [f"{pad}}}"]

    def stmt_Prefetch(self, s: K.Prefetch, pad: str, indent: int) -> list[str]:
        line = self.prefetch(f"&{s.buffer.name}[{self.expr(s.index)}]")
        return [pad + line] if line else []

    def stmt_Comment(self, s: K.Comment, pad: str, indent: int) -> list[str]:
        return [f"{pad}/* {s.text.replace('*/', '* /')} */"]

    def stmt_Invoke(self, s: K.Invoke, pad: str, indent: int) -> list[str]:
        return [f"{pad}{s.fn.name}({', '.join(self._argument(a) for a in s.args)});"]

    def _argument(self, a) -> str:
        if isinstance(a, tuple):
            buffer, index = a
            return f"&{buffer.name}[{self.expr(index)}]"
        return self.expr(a)

    def function(self, fn: K.Function) -> str:
        """A shared helper (K.Function), once per module: as `function_head` declares it,
        its body, and `return <result>;` for one with a result."""
        written = _written(fn.body)
        params = []
        for p in fn.params:
            if isinstance(p, K.Buffer):
                const = "" if id(p) in written else "const "
                params.append(f"{const}{p.dtype.c_type} *restrict {p.name}")
            else:
                params.append(f"{self.value_type(p)} {p.name}")
        values = [p for p in fn.params if isinstance(p, K.Expr)]
        if fn.result is not None:
            values.append(fn.result)
        lines = self.vector_typedefs([*fn.body, *values])
        lines += [f"/* {line} */" for line in fn.doc.splitlines()]
        lines.append(self.function_head(fn, params) + " {")
        lines += self.stmts(fn.body, 1)
        if fn.result is not None:
            lines.append(f"    return {self.expr(fn.result)};")
        lines.append("}")
        return "\n".join(lines)

    def kernel(self, k: K.Kernel) -> str:
        """One kernel function: its signature, its buffers, then its tasks' loop."""
        written = _written(k.body)
        lines = self.vector_typedefs(k.body)
        lines += [f"/* {line} */" for line in k.doc.splitlines()]
        lines.append(self.signature(k) + " {")
        lines += [self.buffer_decl(b, id(b) in written) for b in k.buffers]
        loop = k.parallel_loop
        if loop is not None:
            opening, closing = self.task_loop(loop.var.name)
            lines += opening + self.stmts(loop.body, 2) + closing
        else:
            lines += self.idle_tasks() + self.stmts(k.body, 1)
        lines.append("}")
        return "\n".join(lines)

    def objects(self, target, workdir, cpu: str | None) -> list[str]:
        """Object files beside model.c that the build links (none: everything is text)."""
        return []


class CRenderer(CStyleRenderer):
    """C11 with GCC/Clang extensions: the kernels of every CPU target."""

    name = "c"
    capabilities = frozenset({"vector", "int_dot"})

    def signature(self, k: K.Kernel) -> str:
        return f"static void {k.name}(const kiln_exec *e, int64_t lo, int64_t hi)"

    def task_loop(self, task: str) -> tuple[list[str], list[str]]:
        return [f"    for (int64_t {task} = lo; {task} < hi; ++{task}) {{"], ["    }"]

    def idle_tasks(self) -> list[str]:
        return ["    (void)lo;", "    (void)hi;"]

    def buffer_decl(self, b: K.Buffer, written: bool) -> str:
        ctype = b.dtype.c_type
        if b.storage == "local":
            return f"    {ctype} {b.name}[{b.numel}] __attribute__((aligned(64)));"
        const = "" if written else "const "
        return f"    {const}{ctype} *restrict {b.name} = ({const}{ctype} *)({self.address(b)});"

    def address(self, b: K.Buffer) -> str:
        """Where a non-local buffer's first byte is, from a kernel or the run function."""
        return {
            "input": f"e->inputs[{b.location}]",
            "output": f"e->outputs[{b.location}]",
            "arena": f"e->arena + {b.location}",
            "weight": f"kiln_weights + {b.location}",
            "prepared": f"e->arena + KILN_PREPARED + {b.location}",
        }[b.storage]

    def vector_type(self, dtype: DType, lanes: int) -> str:
        return vector_type(dtype, lanes)

    def vector_typedefs(self, nodes: list) -> list[str]:
        return vector_typedefs(nodes)

    def math_function(self, fn: str, dtype: DType) -> str:
        name = _MATH[fn]
        return name[:-1] if dtype is DType.float64 else name

    def loop_pragma(self, kind: K.LoopKind) -> list[str]:
        return ["#pragma GCC ivdep"] if kind is K.LoopKind.VECTOR else []

    def prefetch(self, address: str) -> str:
        return f"__builtin_prefetch({address}, 0, 3);"

    def function_head(self, fn: K.Function, params: list[str]) -> str:
        """A microkernel (no result) is never inlined, so one copy serves every kernel that
        calls it; a function with a result (vector math) is inlined into its callers."""
        if fn.result is None:
            return f"static __attribute__((noinline)) void {fn.name}({', '.join(params)})"
        return f"static inline {self.value_type(fn.result)} {fn.name}({', '.join(params)})"


class _Written(K.KernelVisitor):
    def __init__(self) -> None:
        self.found: set[int] = set()

    def visit_Store(self, s: K.Store) -> None:
        self.found.add(id(s.buffer))

    visit_VecStore = visit_Store

    def visit_Invoke(self, s: K.Invoke) -> None:   # a pointer the callee writes through
        inner = _written(s.fn.body)
        self.found |= {id(a[0]) for p, a in zip(s.fn.params, s.args)
                       if isinstance(a, tuple) and id(p) in inner}


def _written(body: list[K.Stmt]) -> set[int]:
    """ids of buffers stored to anywhere in `body`."""
    walk = _Written()
    walk.visit(body)
    return walk.found


def _is_vector(e: K.Expr) -> bool:
    """Whether `e` has lanes (a vector epilogue's select arms are vectors or splats)."""
    if isinstance(e, K.Select):
        return _is_vector(e.a)
    if isinstance(e, K.Unary):
        return _is_vector(e.x)
    if isinstance(e, K.Binary):
        return _is_vector(e.a) or _is_vector(e.b)
    return K.lanes_of(e) > 1


def vector_type(dtype: DType, lanes: int) -> str:
    """The C name of a vector of `lanes` `dtype`s (an `_u` twin allows unaligned access)."""
    return f"kiln_v{lanes}{dtype.name}"


def vector_typedefs(nodes: list) -> list[str]:
    """Typedefs (guarded, so kernels may repeat them) of the vector types that `nodes`
    (statements and expressions) declare, store, bit-cast to or name; the intrinsics
    header first where they print an ISA intrinsic (K.Dot4)."""
    walk = _VectorTypes()
    walk.visit(nodes)
    used = sorted(walk.found, key=lambda t: (t[0].name, t[1]))
    lines: list[str] = ["#include <immintrin.h>"] if walk.intrinsics else []
    for dtype, lanes in used:
        name, size = vector_type(dtype, lanes), lanes * dtype.itemsize
        guard = name.upper() + "_DEFINED"
        lines += [f"#ifndef {guard}", f"#define {guard}",
                  f"typedef {dtype.c_type} {name} __attribute__((vector_size({size})));",
                  f"typedef {dtype.c_type} {name}_u __attribute__((vector_size({size}), "
                  f"aligned({dtype.itemsize}), may_alias));", "#endif"]
    return lines


class _VectorTypes(K.KernelVisitor):
    def __init__(self) -> None:
        self.found: set[tuple[DType, int]] = set()
        self.intrinsics = False   # whether an ISA intrinsic (immintrin.h) is printed

    def visit_Dot4(self, e: K.Dot4) -> None:
        self.intrinsics = True
        self.found.add((DType.int32, e.lanes))
        self.generic_visit(e)

    def visit_VecStore(self, s: K.VecStore) -> None:
        self.found.add((s.buffer.dtype, s.lanes))
        self.generic_visit(s)

    def visit_VecVar(self, e: K.VecVar) -> None:
        self.found.add((e.dtype, e.lanes))

    def visit_Bitcast(self, e: K.Bitcast) -> None:
        if e.lanes > 1:
            self.found.add((e.dtype, e.lanes))
        self.generic_visit(e)


