"""Side tables of the LLVM IR renderer: dtype -> LLVM type, math functions, trap safety."""

from __future__ import annotations

from llvmlite import ir

from ..compiler.dtypes import DType
from . import kernel_ir as K

_INT_BITS = {DType.int8: 8, DType.uint8: 8, DType.int16: 16, DType.uint16: 16,
             DType.int32: 32, DType.uint32: 32, DType.int64: 64, DType.uint64: 64,
             DType.bool: 8}
_SIGNED = (DType.int8, DType.int16, DType.int32, DType.int64)

#: generic intrinsic name -> (LLVM intrinsic or None, libm name of the double version; the
#: float version adds "f"). Intrinsics where targets have an instruction, libm otherwise.
LLVM_MATH = {"exp": (None, "exp"), "log": (None, "log"), "tanh": (None, "tanh"),
             "erf": (None, "erf"), "sin": (None, "sin"), "cos": (None, "cos"),
             "log1p": (None, "log1p"), "pow": (None, "pow"),
             "sqrt": ("llvm.sqrt", "sqrt"), "floor": ("llvm.floor", "floor"),
             "ceil": ("llvm.ceil", "ceil"), "round": ("llvm.nearbyint", "nearbyint"),
             "abs": ("llvm.fabs", "fabs"),
             "exp_poly": (None, "exp")}

def is_signed(dtype: DType) -> bool:
    return dtype in _SIGNED


def memory_type(dtype: DType) -> ir.Type:
    """How `dtype` is stored in buffers (bool: one byte, as C's uint8_t)."""
    if dtype is DType.float32:
        return ir.FloatType()
    if dtype is DType.float64:
        return ir.DoubleType()
    if dtype is DType.float16:
        return ir.HalfType()
    return ir.IntType(_INT_BITS[dtype])


def register_type(dtype: DType) -> ir.Type:
    """How a `dtype` value is held in registers (bool: i1)."""
    return ir.IntType(1) if dtype is DType.bool else memory_type(dtype)


def cannot_trap(e: K.Expr) -> bool:
    """Whether evaluating `e` eagerly cannot trap (no loads, no integer division; a call of a
    K.Function is assumed to, whatever its body)."""
    if isinstance(e, (K.Const, K.Var, K.VecVar)):
        return True
    if isinstance(e, (K.Load, K.VecLoad)):
        return False
    if isinstance(e, K.Binary):
        if e.op in ("/", "%") and not e.dtype.is_float:
            return False
        return cannot_trap(e.a) and cannot_trap(e.b)
    if isinstance(e, (K.Unary, K.Cast, K.Broadcast, K.Bitcast)):
        return cannot_trap(e.x)
    if isinstance(e, K.Select):
        return cannot_trap(e.cond) and cannot_trap(e.a) and cannot_trap(e.b)
    if isinstance(e, K.Call):
        return all(cannot_trap(a) for a in e.args)
    return False
