"""A kernel-IR verifier: catches lowering bugs before they become wrong C.

It checks that every variable used is bound (by an enclosing For, an earlier Let in the same
or an enclosing block, a Function parameter, or a name the caller says is known), that a
Load/Store whose index is affine in loop variables with constant bounds stays inside the
buffer's static extent, that a Bitcast keeps its operand's lanes and width, that bitwise ops
apply to integers or bools, and that a call passes one argument per parameter (an address
for a pointer, a scalar for a scalar, which converts as C's assignment does, a vector of the
parameter's exact type for a vector; Apply calls a Function with a result, Invoke one
without). It is conservative: accesses under an If, a Select arm or the right side of && /
|| may be guarded and are not bounds-checked, nor are buffers of unknown extent.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator, Union

from ..compiler.dtypes import DType
from . import kernel_ir as K


class KernelVerificationError(Exception):
    """A kernel that breaks an invariant of the kernel IR; the message names the culprit."""


def verify_kernel(kernel_or_stmts: Union[K.Kernel, K.Function, list[K.Stmt]],
                  known: Iterable[str] = ()) -> None:
    """Raise KernelVerificationError if `kernel_or_stmts` uses an unbound variable or
    indexes a buffer provably out of its extent. `known` names variables bound outside
    (e.g. a renderer's own parameters). Functions the body invokes are verified too."""
    _Verifier(set(known)).run(kernel_or_stmts)


#: an affine index: variable name -> coefficient, plus the constant term under ""
_Affine = dict[str, int]


class _Verifier(K.KernelVisitor):
    def __init__(self, known: set[str]) -> None:
        self.scopes: list[set[str]] = [set(known)]
        self.bounds: dict[str, tuple[int, int]] = {}   # loop var -> inclusive [lo, hi]
        self.guarded = 0
        self.functions: dict[str, K.Function] = {}
        self.where = "kernel"

    def run(self, node: Union[K.Kernel, K.Function, list[K.Stmt]]) -> None:
        if isinstance(node, K.Kernel):
            self.where = f"kernel {node.name}"
            self._block(node.body)
        elif isinstance(node, K.Function):
            self._function(node)
        else:
            self._block(node)
        done: set[str] = set()
        while set(self.functions) - done:
            name = sorted(set(self.functions) - done)[0]
            done.add(name)
            self._function(self.functions[name])

    def _function(self, fn: K.Function) -> None:
        inner = _Verifier({p.name for p in fn.params if isinstance(p, (K.Var, K.VecVar))})
        inner.where = f"function {fn.name}"
        inner.functions = self.functions   # what it invokes is verified by run's loop
        inner._block(fn.body, fn.result)

    def _fail(self, message: str) -> None:
        raise KernelVerificationError(f"{self.where}: {message}")

    def _block(self, body: list[K.Stmt], result: K.Expr | None = None) -> None:
        """Visit `body` in a scope of its own, then `result` (a Function's) in that scope."""
        self.scopes.append(set())
        for s in body:
            self.visit(s)
        if result is not None:
            self.visit(result)
        self.scopes.pop()

    @contextmanager
    def _maybe_guarded(self) -> Iterator[None]:
        """Accesses visited inside may be guarded by a condition: no bounds checks there."""
        self.guarded += 1
        try:
            yield
        finally:
            self.guarded -= 1

    def _bound(self, name: str) -> bool:
        return any(name in scope for scope in self.scopes)

    # statements
    def visit_For(self, s: K.For) -> None:
        self.visit(s.start)
        self.visit(s.stop)
        start, stop = _constant(s.start), _constant(s.stop)
        if start is not None and stop is not None and stop <= start:
            return   # never runs: its body's accesses never happen
        saved = self.bounds.get(s.var.name)
        if start is not None and stop is not None:
            self.bounds[s.var.name] = (start, stop - 1)
        else:
            self.bounds.pop(s.var.name, None)
        self.scopes.append({s.var.name})
        self._block(s.body)
        self.scopes.pop()
        if saved is not None:
            self.bounds[s.var.name] = saved
        else:
            self.bounds.pop(s.var.name, None)

    def visit_Let(self, s: K.Let) -> None:
        self.visit(s.value)
        self.scopes[-1].add(s.var.name)
        self.bounds.pop(s.var.name, None)   # a local shadowing a loop variable is unbounded

    def visit_Assign(self, s: K.Assign) -> None:
        self._use(s.var.name)
        self.visit(s.value)

    def visit_If(self, s: K.If) -> None:
        self.visit(s.cond)
        with self._maybe_guarded():
            self._block(s.then)
            self._block(s.orelse)

    def visit_Store(self, s: K.Store) -> None:
        self._access(s.buffer, s.index, 1)
        self.visit(s.value)

    def visit_VecStore(self, s: K.VecStore) -> None:
        self._access(s.buffer, s.index, s.lanes)
        self.visit(s.value)

    def visit_Invoke(self, s: K.Invoke) -> None:
        if s.fn.result is not None:
            self._fail(f"Invoke of function {s.fn.name}, which returns a value (use Apply)")
        self._call(s.fn, s.args)
        self.generic_visit(s)

    def _call(self, fn: K.Function, args) -> None:
        """Check a call's arguments against `fn`'s parameters and queue `fn` for verifying."""
        if len(args) != len(fn.params):
            self._fail(f"call of {fn.name} passes {len(args)} arguments for "
                       f"{len(fn.params)} parameters")
        for param, arg in zip(fn.params, args):
            if isinstance(param, K.Buffer):
                if not (isinstance(arg, tuple) and len(arg) == 2):
                    self._fail(f"call of {fn.name}: parameter {param.name} is a pointer; "
                               f"pass (buffer, index)")
                continue
            lanes = K.lanes_of(param)   # a scalar converts as C's assignment does
            if isinstance(arg, tuple) or K.lanes_of(arg) != lanes \
                    or (lanes > 1 and arg.dtype is not param.dtype):
                self._fail(f"call of {fn.name}: parameter {param.name} wants "
                           f"{_type_name(param)}, got {_type_name(arg)}")
        self.functions.setdefault(fn.name, fn)

    # expressions
    def visit_Var(self, e: K.Var) -> None:
        self._use(e.name)

    def visit_VecVar(self, e: K.VecVar) -> None:
        self._use(e.name)

    def visit_Load(self, e: K.Load) -> None:
        self._access(e.buffer, e.index, 1)

    def visit_VecLoad(self, e: K.VecLoad) -> None:
        self._access(e.buffer, e.index, e.lanes)

    def visit_Select(self, e: K.Select) -> None:
        self.visit(e.cond)
        with self._maybe_guarded():
            self.visit(e.a)
            self.visit(e.b)

    def visit_Apply(self, e: K.Apply) -> None:
        if e.fn.result is None:
            self._fail(f"Apply of function {e.fn.name}, which returns nothing (use Invoke)")
        self._call(e.fn, e.args)
        self.generic_visit(e)

    def visit_Bitcast(self, e: K.Bitcast) -> None:
        lanes = K.lanes_of(e.x)
        if e.lanes != lanes or e.dtype.itemsize != e.x.dtype.itemsize \
                or DType.bool in (e.dtype, e.x.dtype):
            self._fail(f"Bitcast of {_type_name(e.x)} to {_type_name(e)}: the lanes and the "
                       f"element width must stay (and bools have no bits to reinterpret)")
        self.visit(e.x)

    def visit_Binary(self, e: K.Binary) -> None:
        if e.op in K.BITWISE and (e.a.dtype.is_float or e.b.dtype.is_float):
            self._fail(f"bitwise {e.op!r} on {_type_name(e.a)} and {_type_name(e.b)}: "
                       f"Bitcast floats to integers first")
        self.visit(e.a)
        if e.op in ("&&", "||"):   # short-circuit: the right side may be guarded by the left
            with self._maybe_guarded():
                self.visit(e.b)
        else:
            self.visit(e.b)

    def _use(self, name: str) -> None:
        if not self._bound(name):
            self._fail(f"variable {name!r} is used but not bound by a For, a Let or a parameter")

    def _access(self, buffer: K.Buffer, index: K.Expr, lanes: int) -> None:
        self.visit(index)
        if self.guarded or buffer.numel <= 0 or buffer.storage == "param":
            return
        span = self._range(index)
        if span is None:
            return
        lo, hi = span[0], span[1] + lanes - 1
        if lo < 0 or hi >= buffer.numel:
            self._fail(f"access to buffer {buffer.name!r} at [{lo}, {hi}] is outside its "
                       f"extent [0, {buffer.numel - 1}]")

    def _range(self, index: K.Expr) -> tuple[int, int] | None:
        """Exact [lo, hi] of an affine index over independent constant-bounded loop vars."""
        form = _affine(index)
        if form is None:
            return None
        lo = hi = form.get("", 0)
        for name, coef in form.items():
            if name == "":
                continue
            if name not in self.bounds:
                return None
            a, b = self.bounds[name]
            lo += min(coef * a, coef * b)
            hi += max(coef * a, coef * b)
        return lo, hi


def _type_name(e) -> str:
    """`e`'s type as a message says it: float32, or float32x8 for a vector."""
    if isinstance(e, tuple):
        return "an address"
    lanes = K.lanes_of(e) if isinstance(e, K.Expr) else 1
    return e.dtype.name + (f"x{lanes}" if lanes > 1 else "")


def _constant(e: K.Expr) -> int | None:
    if isinstance(e, K.Const) and e.dtype is K.INDEX:
        return int(e.value)
    return None


def _affine(e: K.Expr) -> _Affine | None:
    """`e` as sum(coef * var) + constant, or None when it is not affine in plain Vars."""
    value = _constant(e)
    if value is not None:
        return {"": value}
    if isinstance(e, K.Var) and e.dtype is K.INDEX:
        return {e.name: 1}
    if isinstance(e, K.Binary) and e.op in ("+", "-"):
        a, b = _affine(e.a), _affine(e.b)
        if a is None or b is None:
            return None
        sign = 1 if e.op == "+" else -1
        out = dict(a)
        for key, c in b.items():
            out[key] = out.get(key, 0) + sign * c
        return out
    if isinstance(e, K.Binary) and e.op == "*":
        a, b = _affine(e.a), _affine(e.b)
        if a is None or b is None:
            return None
        for x, y in ((a, b), (b, a)):
            if set(y) <= {""}:
                return {k: c * y.get("", 0) for k, c in x.items()}
    return None
