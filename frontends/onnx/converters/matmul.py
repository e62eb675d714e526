"""MatMul and Gemm -> IR matmul (plus transpose, mul and add for Gemm's extras)."""

from __future__ import annotations

from ..registry import converter
from .common import reshape, scalar


@converter("MatMul", since=1)
def matmul(ctx, a, b):
    """numpy.matmul semantics: a 1-D operand is lifted to a matrix, and its dim dropped."""
    if a.type.rank == 0 or b.type.rank == 0:
        ctx.fail("MatMul operands must not be scalars")
    a2 = reshape(ctx, a, (1,) + a.shape) if a.type.rank == 1 else a
    b2 = reshape(ctx, b, b.shape + (1,)) if b.type.rank == 1 else b
    y = ctx.emit("matmul", [a2, b2])
    shape = y.shape
    if b.type.rank == 1:
        shape = shape[:-1]
    if a.type.rank == 1:
        shape = shape[:-2] + shape[-1:] if b.type.rank != 1 else shape[:-1]
    return reshape(ctx, y, shape)


@converter("Gemm", since=1)
def gemm(ctx, a, b, c=None, alpha=1.0, beta=1.0, transA=0, transB=0, broadcast=0):
    """alpha * A' @ B' + beta * C. A constant B is transposed (and scaled by alpha) at compile time;
    `broadcast` (opset < 7) is subsumed by numpy broadcasting of C."""
    if a.type.rank != 2 or b.type.rank != 2:
        ctx.fail(f"Gemm needs 2-D A and B, got {a.shape} and {b.shape}")
    if transA:
        a = ctx.emit("transpose", [a], perm=(1, 0))
    if transB:
        b = ctx.emit("transpose", [b], perm=(1, 0))
    scale_output = alpha != 1.0 and not (a.is_constant or b.is_constant)
    if alpha != 1.0 and b.is_constant:
        b = ctx.emit("mul", [b, scalar(ctx, alpha, b)])
    elif alpha != 1.0 and a.is_constant:
        a = ctx.emit("mul", [a, scalar(ctx, alpha, a)])
    y = ctx.emit("matmul", [a, b])
    if scale_output:
        y = ctx.emit("mul", [y, scalar(ctx, alpha, y)])
    if c is None or beta == 0.0:
        return y
    if beta != 1.0:
        c = ctx.emit("mul", [c, scalar(ctx, beta, c)])
    return ctx.emit("add", [y, c])
