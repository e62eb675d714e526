"""ONNX Runtime's com.microsoft 8-bit elementwise ops against ONNX Runtime itself, bit for
bit: QLinearAdd and QLinearMul over every pair of int8 / uint8 values and broadcast either
way (ONNX Runtime's kernel rounds differently when the first operand is the broadcast one,
and Kiln follows it), QLinearSigmoid and QLinearLeakyRelu over every value (256-entry
tables), QLinearConcat with requantized and pass-through inputs, QLinearGlobalAveragePool
NCHW and channels_last. Scales and zero points are drawn at random per case."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import kiln

import contrib_models as cm
from kernel_build import assert_bits_equal_onnxruntime

DTYPES = {"int8": np.int8, "uint8": np.uint8}
BUILDERS = {
    "add": lambda rng, dtype: cm.binary(rng, dtype, "QLinearAdd"),
    "mul": lambda rng, dtype: cm.binary(rng, dtype, "QLinearMul"),
    "sigmoid": lambda rng, dtype: cm.unary(rng, dtype, "QLinearSigmoid"),
    "leaky_relu": lambda rng, dtype: cm.unary(rng, dtype, "QLinearLeakyRelu"),
    "concat": cm.concat,
    "global_average_pool": cm.global_average_pool,
}


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("op", list(BUILDERS))
def test_outputs_equal_onnxruntime(tmp_path, op, dtype):
    rng = np.random.default_rng(zlib.crc32(f"{op}-{dtype}".encode()))
    model, feed = BUILDERS[op](rng, DTYPES[dtype])
    assert_bits_equal_onnxruntime(tmp_path, model, feed, op)


def test_a_run_time_scale_is_a_clear_error(tmp_path):
    """The tables and ratios are computed at compile time: a scale fed at run time is the
    user's to fix, said in one KilnError that names it."""
    from onnx import TensorProto, helper

    model, _ = cm.unary(np.random.default_rng(0), np.uint8, "QLinearSigmoid")
    model.graph.initializer.remove(next(i for i in model.graph.initializer
                                        if i.name == "x0_scale"))
    model.graph.input.append(helper.make_tensor_value_info("x0_scale", TensorProto.FLOAT, []))
    with pytest.raises(kiln.KilnError, match="X's scale must be known at compile time"):
        kiln.compile(model, output=str(tmp_path / "model.so"))
