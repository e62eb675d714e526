"""Print kernel IR as LLVM IR (llvmlite) and emit one object file of kernels for any target.

Each Kernel becomes `void @name(ptr e, i64 lo, i64 hi)` with hidden visibility: the same
kiln_task_fn the C template launches with kiln_parallel_for (the module skeleton, tensor
descriptors and runtime stay C). A K.Function a kernel calls becomes an internal function of
the module, defined on its first call: a microkernel (Invoke) never inlined, as in C, and
vector math (Apply, a function with a result) always inlined. Locals live in allocas that
LLVM's pipeline promotes; math intrinsics are libm calls (or LLVM intrinsics where the ISA
has an instruction), as the C renderer's <math.h> calls are, but for float32 erf and
exp_poly: the 1-lane Functions of lower/vector_math.py, C's kiln_erff and kiln_expf. Scalar selects and && / ||
whose operands may trap (loads, integer division, calls) are branches, as C's ?: and && are
lazy; a select on a vector mask evaluates both arms, as C's vector blend does. Float
arithmetic may contract into FMA, as C compilers do by default."""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from ..compiler.dtypes import DType
from ..compiler.errors import KilnError
from . import kernel_ir as K
from .llvm_types import LLVM_MATH, cannot_trap, is_signed, memory_type, register_type
from .lower.vector_math import SCALAR_FUNCTIONS

#: Optional kernel IR features this renderer prints (the driver gives lowering vectors
#: only when "vector" is here).
CAPABILITIES = frozenset({"vector"})

#: The hidden C constant (model.c's KILN_PREPARED) saying where the arena's prepared region
#: starts: known only once every kernel is lowered, so kernels read it at run time.
PREPARED_AT = "kiln_prepared_at"

_ICMP = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "==", "!=": "!="}
_FCMP_ORDERED = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "=="}
_CONTRACT = ("contract",)


class RenderError(KilnError, RuntimeError):
    """The kernel IR holds a node the LLVM renderer cannot print (a bug in Kiln)."""


@dataclass
class _Buffer:
    ptr: ir.Value
    elem: ir.Type


class BodyBuilder:
    """Builds the body of one LLVM function from kernel IR: locals, expressions, statements.
    KernelBuilder and FunctionBuilder make the function and say where its buffers are."""

    def __init__(self, module: ir.Module, fn: ir.Function):
        self.module = module
        self.fn = fn
        fn.attributes.add("nounwind")
        self.entry = fn.append_basic_block("entry")
        self.alloca_builder = ir.IRBuilder(self.entry)
        body = fn.append_basic_block("body")
        self.b = ir.IRBuilder(body)
        self.vars: dict[str, ir.Value] = {}
        self.buffers: dict[int, _Buffer] = {}

    def finish_body(self, body: list[K.Stmt], result: K.Expr | None = None) -> None:
        """Emit `body`, return `result` (void without one) and close the entry block."""
        self.stmts(body)
        if result is None:
            self.b.ret_void()
        else:
            self.b.ret(self.expr(result))
        self.alloca_builder.branch(self.fn.basic_blocks[1])

    # -- locals ----------------------------------------------------------------------

    def _declare(self, var: K.Expr) -> ir.Value:
        """A new slot for `var` (a Let, a loop variable, a parameter), bound to its name
        until the enclosing block ends: as in C, an inner block may declare a name of the
        outer one again, with another type."""
        slot = self.alloca_builder.alloca(self._reg_type(var), name=var.name)
        self.vars[var.name] = slot
        return slot

    def block(self, body: list[K.Stmt]) -> None:
        """`body` as a C block: the names it declares are unbound after it."""
        outer = dict(self.vars)
        self.stmts(body)
        self.vars = outer

    def _reg_type(self, e: K.Expr) -> ir.Type:
        lanes = getattr(e, "lanes", 1) if isinstance(e, K.VecVar) else K.lanes_of(e)
        scalar = register_type(e.dtype)
        return ir.VectorType(scalar, lanes) if lanes > 1 else scalar

    def _address(self, buffer: K.Buffer, index: K.Expr) -> tuple[_Buffer, ir.Value]:
        buf = self.buffers.get(id(buffer))
        if buf is None:
            raise RenderError(f"buffer {buffer.name} is used but not declared by the kernel")
        return buf, self.b.gep(buf.ptr, [self.expr(index)], source_etype=buf.elem)

    # -- expressions ---------------------------------------------------------------------

    def expr(self, e: K.Expr) -> ir.Value:
        method = getattr(self, "_" + type(e).__name__.lower(), None)
        if method is None:
            raise RenderError(f"the LLVM renderer cannot print kernel IR node "
                              f"{type(e).__name__} (add it to codegen/llvm_renderer.py)")
        return method(e)

    def _const(self, e: K.Const) -> ir.Value:
        typ = register_type(e.dtype)
        if e.dtype.is_float:
            return ir.Constant(typ, float(e.value))
        return ir.Constant(typ, int(e.value))

    def _var(self, e: K.Var) -> ir.Value:
        if e.name not in self.vars:
            raise RenderError(f"variable {e.name} is read before it is defined")
        return self.b.load(self.vars[e.name])

    _vecvar = _var

    def _load(self, e: K.Load) -> ir.Value:
        buf, addr = self._address(e.buffer, e.index)
        value = self.b.load(addr, typ=buf.elem)
        return self.b.icmp_unsigned("!=", value, ir.Constant(buf.elem, 0)) \
            if e.dtype is DType.bool else value

    def _vecload(self, e: K.VecLoad) -> ir.Value:
        addr, vtype = self._vector_address(e.buffer, e.index, e.lanes)
        load = self.b.load(addr, typ=vtype)
        load.align = e.dtype.itemsize
        return load

    def _vector_address(self, buffer: K.Buffer, index: K.Expr, lanes: int
                        ) -> tuple[ir.Value, ir.Type]:
        """(address of `lanes` elements of buffer from index, their vector type). A local
        buffer's alloca is a typed pointer to its elements: cast to the vector's."""
        buf, addr = self._address(buffer, index)
        vtype = ir.VectorType(buf.elem, lanes)
        if not addr.type.is_opaque:
            addr = self.b.bitcast(addr, vtype.as_pointer())
        return addr, vtype

    def _broadcast(self, e: K.Broadcast) -> ir.Value:
        scalar = self.expr(e.x)
        vtype = ir.VectorType(scalar.type, e.lanes)
        one = self.b.insert_element(ir.Constant(vtype, ir.Undefined), scalar,
                                    ir.Constant(ir.IntType(32), 0))
        mask = ir.Constant(ir.VectorType(ir.IntType(32), e.lanes), [0] * e.lanes)
        return self.b.shuffle_vector(one, ir.Constant(vtype, ir.Undefined), mask)

    def _unary(self, e: K.Unary) -> ir.Value:
        x = self.expr(e.x)
        if e.op == "!":
            if e.x.dtype is DType.bool:
                return self.b.xor(x, ir.Constant(x.type, 1))
            return self._is_zero(x, e.x.dtype)
        if e.op == "-":
            if e.dtype.is_float:
                return self.b.fneg(x)
            return self.b.neg(x)
        raise RenderError(f"unknown unary operator {e.op!r}")

    def _is_zero(self, x: ir.Value, dtype: DType) -> ir.Value:
        if dtype.is_float:
            return self.b.fcmp_ordered("==", x, ir.Constant(x.type, 0.0))   # C: !x is x == 0
        return self.b.icmp_unsigned("==", x, ir.Constant(x.type, 0))

    def _binary(self, e: K.Binary) -> ir.Value:
        if e.op in ("&&", "||"):
            return self._logical(e)
        a, b = self.expr(e.a), self.expr(e.b)
        if isinstance(a.type, ir.VectorType) != isinstance(b.type, ir.VectorType):
            raise RenderError(f"binary {e.op!r} mixes a vector and a scalar (use Broadcast)")
        dtype = e.a.dtype
        if e.op == "^^":
            return self.b.xor(self._truth(a, dtype), self._truth(b, e.b.dtype))
        if e.op in _ICMP:
            return self._compare(e.op, a, b, dtype)
        if e.op in ("min", "max"):
            cmp = self._compare("<" if e.op == "min" else ">", a, b, dtype)
            return self.b.select(cmp, a, b)
        if dtype.is_float:
            op = {"+": self.b.fadd, "-": self.b.fsub, "*": self.b.fmul, "/": self.b.fdiv,
                  "%": self.b.frem}.get(e.op)
            if op is None:
                raise RenderError(f"unknown float operator {e.op!r}")
            return op(a, b, flags=_CONTRACT) if e.op in "+-*" else op(a, b)
        if dtype is DType.bool and e.op in "+-*":
            a, b = self.b.zext(a, ir.IntType(8)), self.b.zext(b, ir.IntType(8))
        signed = is_signed(dtype)
        op = {"+": self.b.add, "-": self.b.sub, "*": self.b.mul,
              "/": self.b.sdiv if signed else self.b.udiv,
              "%": self.b.srem if signed else self.b.urem,
              "&": self.b.and_, "|": self.b.or_, "^": self.b.xor, "<<": self.b.shl,
              ">>": self.b.ashr if signed else self.b.lshr}.get(e.op)
        if op is None:
            raise RenderError(f"unknown integer operator {e.op!r}")
        result = op(a, b)
        return self._truth(result, DType.uint8) if dtype is DType.bool else result

    def _truth(self, x: ir.Value, dtype: DType) -> ir.Value:
        """x as i1 (C's 'x != 0'), x already i1 for bools (a vector of i1 for a mask)."""
        lane = x.type.element if isinstance(x.type, ir.VectorType) else x.type
        if lane == ir.IntType(1):
            return x
        if dtype.is_float:
            return self.b.fcmp_unordered("!=", x, ir.Constant(x.type, 0.0))
        return self.b.icmp_unsigned("!=", x, ir.Constant(x.type, 0))

    def _compare(self, op: str, a: ir.Value, b: ir.Value, dtype: DType) -> ir.Value:
        if dtype.is_float:
            if op == "!=":
                return self.b.fcmp_unordered("!=", a, b)   # C: NaN != x is true
            return self.b.fcmp_ordered(_FCMP_ORDERED[op], a, b)
        if is_signed(dtype):
            return self.b.icmp_signed(op, a, b)
        return self.b.icmp_unsigned(op, a, b)

    def _logical(self, e: K.Binary) -> ir.Value:
        a = self._truth(self.expr(e.a), e.a.dtype)
        if cannot_trap(e.b):
            b = self._truth(self.expr(e.b), e.b.dtype)
            return self.b.and_(a, b) if e.op == "&&" else self.b.or_(a, b)
        start = self.b.block
        rhs = self.fn.append_basic_block("rhs")
        done = self.fn.append_basic_block("logic_done")
        if e.op == "&&":
            self.b.cbranch(a, rhs, done)
        else:
            self.b.cbranch(a, done, rhs)
        self.b.position_at_end(rhs)
        b = self._truth(self.expr(e.b), e.b.dtype)
        rhs_end = self.b.block
        self.b.branch(done)
        self.b.position_at_end(done)
        phi = self.b.phi(ir.IntType(1))
        phi.add_incoming(ir.Constant(ir.IntType(1), 0 if e.op == "&&" else 1), start)
        phi.add_incoming(b, rhs_end)
        return phi

    def _select(self, e: K.Select) -> ir.Value:
        cond = self._truth(self.expr(e.cond), e.cond.dtype)
        if isinstance(cond.type, ir.VectorType) or (cannot_trap(e.a) and cannot_trap(e.b)):
            # a mask picks lane by lane from both arms (C's vector blend evaluates both too)
            return self.b.select(cond, self.expr(e.a), self.expr(e.b))
        then = self.fn.append_basic_block("sel_then")
        other = self.fn.append_basic_block("sel_else")
        done = self.fn.append_basic_block("sel_done")
        self.b.cbranch(cond, then, other)
        self.b.position_at_end(then)
        a = self.expr(e.a)
        then_end = self.b.block
        self.b.branch(done)
        self.b.position_at_end(other)
        b = self.expr(e.b)
        other_end = self.b.block
        self.b.branch(done)
        self.b.position_at_end(done)
        phi = self.b.phi(a.type)
        phi.add_incoming(a, then_end)
        phi.add_incoming(b, other_end)
        return phi

    def _cast(self, e: K.Cast) -> ir.Value:
        return self.convert(self.expr(e.x), e.x.dtype, e.dtype)

    def _dot4(self, e: K.Dot4) -> ir.Value:
        raise RenderError("the LLVM renderer has no integer dot product (K.Dot4, vpdpbusd); "
                          "int8 kernels that use it are chosen only for renderers with the "
                          "'int_dot' capability: render with --emit c")

    def _bitcast(self, e: K.Bitcast) -> ir.Value:
        return self.b.bitcast(self.expr(e.x), self._reg_type(e))

    def _apply(self, e: K.Apply) -> ir.Value:
        return self.b.call(self._callee(e.fn), self._arguments(e.fn, list(e.args)))

    def _callee(self, fn: K.Function) -> ir.Function:
        """The module's LLVM function for `fn`, built on its first call."""
        defined = self.module.globals.get(fn.name)
        if defined is None:
            return FunctionBuilder(self.module, fn).fn
        return defined

    def _arguments(self, fn: K.Function, args: list) -> list[ir.Value]:
        """Call arguments: addresses for pointers, scalars converted to the parameter's
        type as C converts them (a bool comparison passed for an int64 flag)."""
        values = []
        for param, arg in zip(fn.params, args):
            if isinstance(arg, tuple):
                values.append(self._address(*arg)[1])
            elif isinstance(param, K.Buffer):
                raise RenderError(f"call of {fn.name}: parameter {param.name} needs an address")
            else:
                values.append(self.convert(self.expr(arg), arg.dtype, param.dtype)
                              if K.lanes_of(arg) == 1 else self.expr(arg))
        return values

    def convert(self, x: ir.Value, src: DType, dst: DType) -> ir.Value:
        """C's conversion of a `src` value to `dst` (bool: truncate to a byte, as uint8_t)."""
        if src is dst:
            return x
        b = self.b
        if dst is DType.bool:
            byte = self.convert(x, src, DType.uint8)
            return b.icmp_unsigned("!=", byte, ir.Constant(byte.type, 0))
        to = register_type(dst)
        if src is DType.bool:
            return b.uitofp(x, to) if dst.is_float else b.zext(x, to)
        if src.is_float and dst.is_float:
            return b.fpext(x, to) if dst.itemsize > src.itemsize else b.fptrunc(x, to)
        if src.is_float:
            return b.fptosi(x, to) if is_signed(dst) else b.fptoui(x, to)
        if dst.is_float:
            return b.sitofp(x, to) if is_signed(src) else b.uitofp(x, to)
        if dst.itemsize == src.itemsize:
            return x
        if dst.itemsize < src.itemsize:
            return b.trunc(x, to)
        return b.sext(x, to) if is_signed(src) else b.zext(x, to)

    def _call(self, e: K.Call) -> ir.Value:
        if e.fn not in LLVM_MATH:
            raise RenderError(f"the LLVM renderer knows no math function {e.fn!r}")
        args = [self.expr(a) for a in e.args]
        dtype = e.dtype
        if not dtype.is_float:
            if e.fn == "abs":
                x = args[0]
                if not is_signed(dtype):
                    return x
                return self.b.select(self.b.icmp_signed("<", x, ir.Constant(x.type, 0)),
                                     self.b.neg(x), x)
            if e.fn in ("floor", "ceil", "round"):
                return args[0]
            doubles = [self.convert(a, arg.dtype, DType.float64) for a, arg in zip(args, e.args)]
            return self.convert(self._math(e.fn, doubles, DType.float64), DType.float64, dtype)
        if dtype is DType.float16:
            floats = [self.b.fpext(a, ir.FloatType()) for a in args]
            return self.b.fptrunc(self._math(e.fn, floats, DType.float32), ir.HalfType())
        return self._math(e.fn, args, dtype)

    def _math(self, fn: str, args: list[ir.Value], dtype: DType) -> ir.Value:
        if dtype is DType.float32 and fn in SCALAR_FUNCTIONS:   # C's kiln_erff, kiln_expf
            return self.b.call(self._callee(SCALAR_FUNCTIONS[fn](1)), args)
        intrinsic, libm = LLVM_MATH[fn]
        typ = register_type(dtype)
        if intrinsic:
            callee = self.module.declare_intrinsic(intrinsic, [typ])
        else:
            name = libm if dtype is DType.float64 else libm + "f"
            callee = self.module.globals.get(name)
            if callee is None:
                callee = ir.Function(self.module, ir.FunctionType(typ, [typ] * len(args)), name)
                callee.attributes.add("nounwind")
        return self.b.call(callee, args)

    # -- statements ----------------------------------------------------------------------

    def stmts(self, body: list[K.Stmt]) -> None:
        for s in body:
            self.stmt(s)

    def stmt(self, s: K.Stmt) -> None:
        method = getattr(self, "_" + type(s).__name__.lower(), None)
        if method is None:
            raise RenderError(f"the LLVM renderer cannot print kernel IR statement "
                              f"{type(s).__name__} (add it to codegen/llvm_renderer.py)")
        method(s)

    def _for(self, s: K.For) -> None:
        self.loop(s.var, self.expr(s.start), self.expr(s.stop), s.body)

    def _store(self, s: K.Store) -> None:
        buf, addr = self._address(s.buffer, s.index)
        value = self.expr(s.value)
        if s.buffer.dtype is DType.bool:
            value = self.b.zext(value, buf.elem)
        self.b.store(value, addr)

    def _vecstore(self, s: K.VecStore) -> None:
        addr, _ = self._vector_address(s.buffer, s.index, s.lanes)
        store = self.b.store(self.expr(s.value), addr)
        store.align = s.buffer.dtype.itemsize

    def _let(self, s: K.Let) -> None:
        value = self.expr(s.value)
        self.b.store(value, self._declare(s.var))

    def _assign(self, s: K.Assign) -> None:
        if s.var.name not in self.vars:
            raise RenderError(f"assignment to undeclared variable {s.var.name}")
        self.b.store(self.expr(s.value), self.vars[s.var.name])

    def _if(self, s: K.If) -> None:
        self.branch(s)

    def _comment(self, s: K.Comment) -> None:
        """Nothing to emit (LLVM IR keeps no comments)."""

    def _prefetch(self, s: K.Prefetch) -> None:
        """llvm.prefetch for reading, kept in every cache level (C's __builtin_prefetch(p,
        0, 3))."""
        _, addr = self._address(s.buffer, s.index)
        i32 = ir.IntType(32)
        intrinsic = self.module.globals.get("llvm.prefetch.p0")
        if intrinsic is None:
            intrinsic = ir.Function(self.module, ir.FunctionType(
                ir.VoidType(), [ir.PointerType(), i32, i32, i32]), "llvm.prefetch.p0")
        self.b.call(intrinsic, [addr, ir.Constant(i32, 0), ir.Constant(i32, 3),
                                ir.Constant(i32, 1)])

    def _invoke(self, s: K.Invoke) -> None:
        self.b.call(self._callee(s.fn), self._arguments(s.fn, s.args))

    def loop(self, var: K.Var, start: ir.Value, stop: ir.Value, body: list[K.Stmt]) -> None:
        """for var in [start, stop): body, as header / body / latch blocks."""
        outer = dict(self.vars)
        slot = self._declare(var)
        self.b.store(start, slot)
        header = self.fn.append_basic_block(f"{var.name}_head")
        inner = self.fn.append_basic_block(f"{var.name}_body")
        done = self.fn.append_basic_block(f"{var.name}_done")
        self.b.branch(header)
        self.b.position_at_end(header)
        i = self.b.load(slot)
        self.b.cbranch(self.b.icmp_signed("<", i, stop), inner, done)
        self.b.position_at_end(inner)
        self.block(body)
        self.b.store(self.b.add(self.b.load(slot), ir.Constant(i.type, 1), flags=("nsw",)),
                     slot)
        self.b.branch(header)
        self.b.position_at_end(done)
        self.vars = outer

    def branch(self, s: K.If) -> None:
        cond = self._truth(self.expr(s.cond), s.cond.dtype)
        then = self.fn.append_basic_block("then")
        other = self.fn.append_basic_block("else") if s.orelse else None
        done = self.fn.append_basic_block("endif")
        self.b.cbranch(cond, then, other or done)
        self.b.position_at_end(then)
        self.block(s.then)
        self.b.branch(done)
        if other is not None:
            self.b.position_at_end(other)
            self.block(s.orelse)
            self.b.branch(done)
        self.b.position_at_end(done)


class KernelBuilder(BodyBuilder):
    """Builds one kernel function: its buffers from the kiln_exec descriptor, then its body."""

    def __init__(self, module: ir.Module, kernel: K.Kernel, weights: ir.GlobalVariable):
        i64 = ir.IntType(64)
        ptr = ir.PointerType()
        fnty = ir.FunctionType(ir.VoidType(), [ptr, i64, i64])
        fn = ir.Function(module, fnty, name=kernel.name)
        fn.visibility = "hidden"
        super().__init__(module, fn)
        self.exec_ptr, self.lo, self.hi = fn.args
        self.weights = weights
        for buf in kernel.buffers:
            self.buffers[id(buf)] = self._buffer(buf)

    def _buffer(self, buf: K.Buffer) -> _Buffer:
        elem = memory_type(buf.dtype)
        b = self.alloca_builder
        i8 = ir.IntType(8)
        ptr = ir.PointerType()
        if buf.storage == "local":
            slot = b.alloca(elem, size=ir.Constant(ir.IntType(64), buf.numel), name=buf.name)
            slot.align = 64
            return _Buffer(slot, elem)
        if buf.storage == "weight":
            base = self.weights
        elif buf.storage == "prepared":
            arena = b.load(self.exec_ptr, typ=ptr)
            base = b.gep(arena, [b.load(self._prepared_at())], source_etype=i8, inbounds=True)
        else:
            field = {"arena": 0, "input": 1, "output": 2}.get(buf.storage)
            if field is None:
                raise RenderError(f"buffer {buf.name}: unknown storage {buf.storage!r}")
            slot = b.gep(self.exec_ptr, [ir.Constant(ir.IntType(64), field)],
                         source_etype=ptr, inbounds=True)
            base = b.load(slot, typ=ptr)
            if buf.storage != "arena":
                base = b.load(b.gep(base, [ir.Constant(ir.IntType(64), buf.location)],
                                    source_etype=ptr, inbounds=True), typ=ptr)
        if buf.storage in ("arena", "weight", "prepared") and buf.location:
            base = b.gep(base, [ir.Constant(ir.IntType(64), buf.location)], source_etype=i8,
                         inbounds=True)
        return _Buffer(base, elem)

    def _prepared_at(self) -> ir.GlobalVariable:
        known = self.module.globals.get(PREPARED_AT)
        if known is not None:
            return known
        offset = ir.GlobalVariable(self.module, ir.IntType(64), PREPARED_AT)
        offset.linkage = "external"
        offset.visibility = "hidden"
        offset.global_constant = True
        return offset

    def finish(self, kernel: K.Kernel) -> None:
        """Emit the kernel's body: its parallel loop runs the tasks [lo, hi) it is given."""
        loop = kernel.parallel_loop
        if loop is not None:
            self.loop(loop.var, self.lo, self.hi, loop.body)
            self.finish_body([])
        else:
            self.finish_body(kernel.body)


class FunctionBuilder(BodyBuilder):
    """Builds a shared K.Function as an internal LLVM function: pointer parameters for its
    Buffers (noalias, as C's restrict), values for its Vars and VecVars, the result's type
    (void without one). A microkernel is never inlined, as in C (one copy serves every
    caller); a function with a result (vector math) is always inlined."""

    def __init__(self, module: ir.Module, fn: K.Function):
        types = [ir.PointerType() if isinstance(p, K.Buffer) else self._reg_type(p)
                 for p in fn.params]
        result = ir.VoidType() if fn.result is None else self._reg_type(fn.result)
        llvm_fn = ir.Function(module, ir.FunctionType(result, types), name=fn.name)
        llvm_fn.linkage = "internal"
        super().__init__(module, llvm_fn)
        llvm_fn.attributes.add("noinline" if fn.result is None else "alwaysinline")
        for param, arg in zip(fn.params, llvm_fn.args):
            arg.name = param.name
            if isinstance(param, K.Buffer):
                arg.add_attribute("noalias")
                self.buffers[id(param)] = _Buffer(arg, memory_type(param.dtype))
            else:
                self.alloca_builder.store(arg, self._declare(param))
        self.finish_body(fn.body, fn.result)
