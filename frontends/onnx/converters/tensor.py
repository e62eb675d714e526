"""Ops that make or pass tensors through: Constant, ConstantOfShape, Range, Shape, Size,
Identity and Dropout (inference: identity). All but Identity/Dropout yield constants."""

from __future__ import annotations

import math

import numpy as np

from ..importer import check_tensor_size
from ..registry import converter
from .common import constant_array, ints, python_scalar, requested_outputs


@converter("Constant", since=1)
def constant(ctx, value=None, sparse_value=None, value_float=None, value_floats=None,
             value_int=None, value_ints=None, value_string=None, value_strings=None):
    if sparse_value is not None:
        ctx.fail("sparse constants are not supported", "store the tensor densely")
    if value_string is not None or value_strings is not None:
        ctx.fail("string constants are not supported")
    if value is not None:
        return constant_array(ctx, value)
    if value_float is not None:
        return ctx.const(np.array(value_float, dtype=np.float32))
    if value_floats is not None:
        return ctx.const(np.array(value_floats, dtype=np.float32).reshape(-1))
    if value_int is not None:
        return ctx.const(np.array(value_int, dtype=np.int64))
    if value_ints is not None:
        return ctx.const(np.array(value_ints, dtype=np.int64).reshape(-1))
    ctx.fail("Constant has no value attribute")


@converter("ConstantOfShape", since=9)
def constant_of_shape(ctx, shape, value=None):
    dims = ints(ctx.value_of(shape, "ConstantOfShape's shape"))
    if any(d < 0 for d in dims):
        ctx.fail(f"ConstantOfShape's shape {list(dims)} has a negative dim")
    fill = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value)
    if fill.size != 1:
        ctx.fail(f"ConstantOfShape's value must hold one element, got {fill.size}")
    check_tensor_size(dims, fill.dtype.itemsize, "ConstantOfShape's result")
    return constant_array(ctx, np.full(dims, fill.reshape(-1)[0], dtype=fill.dtype))


@converter("Range", since=11)
def range_(ctx, start, limit, delta, stash_type=1):
    """Folded at compile time: the length of the result fixes a static shape (opset 27's
    stash_type, the precision of the running sum, is moot when numpy computes it)."""
    first = ctx.value_of(start, "Range's start")
    last = ctx.value_of(limit, "Range's limit")
    step = ctx.value_of(delta, "Range's delta")
    dtype = first.dtype
    first, last, step = python_scalar(first), python_scalar(last), python_scalar(step)
    if step == 0:
        ctx.fail("Range's delta is 0")
    count = max(int(math.ceil((last - first) / step)), 0)
    values = np.array(first, dtype=dtype) + np.arange(count, dtype=dtype) * \
        np.array(step, dtype=dtype)
    return ctx.const(values.astype(dtype))


@converter("Shape", since=1)
def shape(ctx, x, start=0, end=None):
    """start/end (opset 15) clamp like Python slicing."""
    attrs = {"start": int(start)}
    if end is not None:
        attrs["end"] = int(end)
    return ctx.emit("shape", [x], **attrs)


@converter("Size", since=1)
def size(ctx, x):
    return ctx.const(np.array(x.type.numel, dtype=np.int64))


@converter("Identity", since=1)
def identity(ctx, x):
    return x


@converter("Dropout", since=1)
def dropout(ctx, x, ratio=None, training_mode=None, is_test=0, seed=None,
            consumed_inputs=None):
    """Inference: the output is the input and the mask (if asked for) is all ones.

    From opset 12 ratio and training_mode are inputs; they must be known at compile time, and
    training (random drops) compiles only with ratio 0. Before opset 7 `is_test` is ignored.
    """
    if training_mode is not None:
        if python_scalar(ctx.value_of(training_mode, "Dropout's training_mode")) and (
                ratio is None or python_scalar(ctx.value_of(ratio, "Dropout's ratio"))):
            # training with ratio 0 drops nothing and scales by 1: the same as inference
            ctx.fail("Dropout with training_mode=true (and a ratio other than 0) is not "
                     "supported: it draws random numbers",
                     "export the model in inference mode (model.eval())")
    outputs = [x]
    if 1 in requested_outputs(ctx):
        mask_dtype = np.bool_ if ctx.opset >= 10 else x.dtype.numpy
        outputs.append(ctx.const(np.ones(x.shape, dtype=mask_dtype)))
    return outputs if len(outputs) > 1 else x
