"""ONNX BitCast (opset 26): the same bits read as another dtype of the same size."""

from __future__ import annotations

from ..registry import converter
from .common import onnx_dtype


@converter("BitCast", since=26)
def bitcast(ctx, x, to=None):
    if to is None:
        ctx.fail("BitCast needs its 'to' attribute")
    target = onnx_dtype(ctx, to, "BitCast's 'to'")
    if target.itemsize != x.dtype.itemsize:
        ctx.fail(f"BitCast from {x.dtype.name} ({x.dtype.itemsize} bytes) to {target.name} "
                 f"({target.itemsize} bytes): ONNX requires the same element size")
    if target == x.dtype:
        return x
    return ctx.emit("bitcast", [x], to=target)
