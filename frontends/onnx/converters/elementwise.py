"""Elementwise ONNX ops -> IR unary/binary ops."""

from __future__ import annotations

from ..registry import converter

_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}


def _binary(onnx_op: str, ir_op: str) -> None:
    @converter(onnx_op, since=7)
    def convert(ctx, a, b):
        return ctx.emit(ir_op, [a, b])


for _onnx_op, _ir_op in _BINARY.items():
    _binary(_onnx_op, _ir_op)


@converter("Relu", since=6)
def relu(ctx, x):
    return ctx.emit("relu", [x])
