"""ONNX Runtime's 8-bit elementwise ops (domain com.microsoft), as its QOperator quantizer
emits them, onto integer-exact IR (the formulas: compiler/qlinear.py):

    QLinearAdd / QLinearMul(A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp)
    QLinearSigmoid / QLinearLeakyRelu(X, X_scale, X_zp, Y_scale, Y_zp; alpha)
        a 256-entry table computed here, gathered by X
    QLinearConcat(Y_scale, Y_zp, X0, X0_scale, X0_zp, X1, ...; axis)
        inputs quantized as Y pass as they are, the others through their requantize table
    QLinearGlobalAveragePool(X, x_scale, x_zp, y_scale, y_zp; channels_last)
        the mean over every axis but N and C (NCHW..., or N...C with channels_last=1)

Scales and zero points are per tensor and constant (as the quantizer writes them); zero
points are optional (0) and of the 8-bit type of the data, which is int8 or uint8.
"""

from __future__ import annotations

import numpy as np

from ....compiler import qlinear
from ....compiler.dtypes import DType
from ....compiler.ir import Value
from ....compiler.ops.quantized import EIGHT_BIT
from ..registry import converter

MS = "com.microsoft"


def _params(ctx, scale: Value, zero: Value | None, like: DType, what: str) -> qlinear.QParams:
    """The constant per-tensor scale and zero point of `what`."""
    data = np.asarray(ctx.value_of(scale, f"{what}'s scale"))
    if data.size != 1 or scale.dtype is not DType.float32:
        ctx.fail(f"{what}'s scale must be one float32 value, not {scale.dtype.name} of shape "
                 f"{list(data.shape)}")
    point = 0
    if zero is not None:
        if zero.dtype is not like:
            ctx.fail(f"{what}'s zero point is {zero.dtype.name}, not {like.name}")
        values = np.asarray(ctx.value_of(zero, f"{what}'s zero point"))
        if values.size != 1:
            ctx.fail(f"{what}'s zero point must be one value, not shape {list(values.shape)}")
        point = int(values.reshape(()))
    return qlinear.QParams(np.float32(data.reshape(())), point)


def _eight_bit(ctx, *values: Value) -> DType:
    dtype = values[0].dtype
    if dtype not in EIGHT_BIT or any(v.dtype is not dtype for v in values):
        ctx.fail(f"{ctx.node.op_type} takes int8 or uint8 tensors of one dtype, not "
                 f"{', '.join(v.dtype.name for v in values)}")
    return dtype


def _binary(ctx, formula, a, a_scale, a_zero_point, b, b_scale, b_zero_point, c_scale,
            c_zero_point):
    dtype = _eight_bit(ctx, a, b)
    return formula(ctx, a, _params(ctx, a_scale, a_zero_point, dtype, "A"),
                   b, _params(ctx, b_scale, b_zero_point, dtype, "B"),
                   _params(ctx, c_scale, c_zero_point, dtype, "C"))


@converter("QLinearAdd", since=1, domain=MS)
def qlinear_add(ctx, a, a_scale, a_zero_point, b, b_scale, b_zero_point, c_scale,
                c_zero_point=None):
    return _binary(ctx, qlinear.add, a, a_scale, a_zero_point, b, b_scale, b_zero_point,
                   c_scale, c_zero_point)


@converter("QLinearMul", since=1, domain=MS)
def qlinear_mul(ctx, a, a_scale, a_zero_point, b, b_scale, b_zero_point, c_scale,
                c_zero_point=None):
    return _binary(ctx, qlinear.mul, a, a_scale, a_zero_point, b, b_scale, b_zero_point,
                   c_scale, c_zero_point)


def _unary_table(ctx, f, x, x_scale, x_zero_point, y_scale, y_zero_point) -> Value:
    dtype = _eight_bit(ctx, x)
    entries = qlinear.table(dtype, _params(ctx, x_scale, x_zero_point, dtype, "X"),
                            _params(ctx, y_scale, y_zero_point, dtype, "Y"), f)
    return qlinear.lookup(ctx, x, entries, f"{ctx.name}_table")


@converter("QLinearSigmoid", since=1, domain=MS)
def qlinear_sigmoid(ctx, x, x_scale, x_zero_point=None, y_scale=None, y_zero_point=None):
    if y_scale is None:
        ctx.fail("QLinearSigmoid needs Y_scale")
    return _unary_table(ctx, qlinear.sigmoid, x, x_scale, x_zero_point, y_scale, y_zero_point)


@converter("QLinearLeakyRelu", since=1, domain=MS)
def qlinear_leaky_relu(ctx, x, x_scale, x_zero_point=None, y_scale=None, y_zero_point=None,
                       alpha=0.01):
    if y_scale is None:
        ctx.fail("QLinearLeakyRelu needs Y_scale")
    return _unary_table(ctx, qlinear.leaky_relu(float(alpha)), x, x_scale, x_zero_point,
                        y_scale, y_zero_point)


@converter("QLinearConcat", since=1, domain=MS)
def qlinear_concat(ctx, y_scale, y_zero_point, *inputs, axis=None):
    if axis is None:
        ctx.fail("QLinearConcat needs its axis attribute")
    if not inputs or len(inputs) % 3:
        ctx.fail(f"QLinearConcat takes (X, X_scale, X_zero_point) triples after Y's scale "
                 f"and zero point, not {len(inputs)} inputs")
    xs = inputs[0::3]
    dtype = _eight_bit(ctx, *xs)
    out = _params(ctx, y_scale, y_zero_point, dtype, "Y")
    parts = [(x, _params(ctx, scale, zero, dtype, f"input {i}"))
             for i, (x, scale, zero) in enumerate(zip(xs, inputs[1::3], inputs[2::3]))]
    rank = xs[0].type.rank
    return qlinear.concat(ctx, parts, out, int(axis) % rank if rank else 0,
                          f"{ctx.name}_table")


@converter("QLinearGlobalAveragePool", since=1, domain=MS)
def qlinear_global_average_pool(ctx, x, x_scale, x_zero_point, y_scale, y_zero_point,
                                channels_last=0):
    dtype = _eight_bit(ctx, x)
    if x.type.rank < 3:
        ctx.fail(f"QLinearGlobalAveragePool needs N, C and a spatial axis, not shape "
                 f"{list(x.shape)}")
    rank = x.type.rank
    axes = tuple(range(1, rank - 1)) if int(channels_last) else tuple(range(2, rank))
    return qlinear.average(ctx, x, _params(ctx, x_scale, x_zero_point, dtype, "X"),
                           _params(ctx, y_scale, y_zero_point, dtype, "Y"), axes)
