"""The small ONNX models the server tests serve, built with onnx.helper."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]

#: input name suffix -> ONNX element type: every datatype the protocol and Kiln share
DTYPES = {"b": TensorProto.BOOL, "u8": TensorProto.UINT8, "i8": TensorProto.INT8,
          "u16": TensorProto.UINT16, "i16": TensorProto.INT16, "i32": TensorProto.INT32,
          "i64": TensorProto.INT64, "u32": TensorProto.UINT32, "u64": TensorProto.UINT64,
          "f16": TensorProto.FLOAT16, "f32": TensorProto.FLOAT, "f64": TensorProto.DOUBLE,
          "bf16": TensorProto.BFLOAT16}
DTYPE_SHAPE = (2, 3)


def conv_model(batch: int | str = 1) -> onnx.ModelProto:
    """A 3x3 convolution (8 channels) and a ReLU on a `batch`x3x16x16 image (`batch` a size,
    or the name of a symbolic dim)."""
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((8, 3, 3, 3)) / 5).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8, 16, 16])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    return helper.make_model(graph, opset_imports=OPSET)


def dtypes_model(suffixes: list[str] | None = None) -> onnx.ModelProto:
    """One input and one output of every datatype (or of those in `suffixes`): out = in + in
    (NOT for BOOL; through float32 for BF16)."""
    nodes, inputs, outputs = [], [], []
    for suffix, elem in DTYPES.items():
        if suffixes is not None and suffix not in suffixes:
            continue
        x, y = f"in_{suffix}", f"out_{suffix}"
        inputs.append(helper.make_tensor_value_info(x, elem, list(DTYPE_SHAPE)))
        outputs.append(helper.make_tensor_value_info(y, elem, list(DTYPE_SHAPE)))
        if elem == TensorProto.BOOL:
            nodes.append(helper.make_node("Not", [x], [y]))
        elif elem == TensorProto.BFLOAT16:
            nodes += [helper.make_node("Cast", [x], [f"wide_{suffix}"], to=TensorProto.FLOAT),
                      helper.make_node("Add", [f"wide_{suffix}"] * 2, [f"sum_{suffix}"]),
                      helper.make_node("Cast", [f"sum_{suffix}"], [y],
                                       to=TensorProto.BFLOAT16)]
        else:
            nodes.append(helper.make_node("Add", [x, x], [y]))
    return helper.make_model(helper.make_graph(nodes, "dtypes", inputs, outputs),
                             opset_imports=OPSET)


def slow_model(size: int = 256, layers: int = 12) -> onnx.ModelProto:
    """A chain of size x size MatMul + Tanh layers: milliseconds per run, so that requests
    pile up in a queue."""
    rng = np.random.default_rng(1)
    nodes, weights, name = [], [], "x"
    for i in range(layers):
        weights.append(numpy_helper.from_array(
            (rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32), f"w{i}"))
        nodes += [helper.make_node("MatMul", [name, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Tanh", [f"m{i}"], [f"t{i}"])]
        name = f"t{i}"
    nodes.append(helper.make_node("Identity", [name], ["y"]))
    graph = helper.make_graph(
        nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])], weights)
    return helper.make_model(graph, opset_imports=OPSET)


def float8_model() -> onnx.ModelProto:
    """An input of type float8e4m3fn, which the protocol has no datatype for."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], "float8",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT8E4M3FN, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def dtype_feed(seed: int = 3) -> dict[str, np.ndarray]:
    """Small values of every input of dtypes_model (sums stay in range)."""
    import ml_dtypes

    rng = np.random.default_rng(seed)
    numpy_types = {"b": np.bool_, "u8": np.uint8, "i8": np.int8, "u16": np.uint16,
                   "i16": np.int16, "i32": np.int32, "i64": np.int64, "u32": np.uint32,
                   "u64": np.uint64, "f16": np.float16, "f32": np.float32, "f64": np.float64,
                   "bf16": ml_dtypes.bfloat16}
    feed = {}
    for suffix, dtype in numpy_types.items():
        if dtype is np.bool_:
            value = rng.integers(0, 2, DTYPE_SHAPE).astype(bool)
        elif np.dtype(dtype).kind in "iu":
            value = rng.integers(0, 50, DTYPE_SHAPE).astype(dtype)
        else:
            value = rng.standard_normal(DTYPE_SHAPE).astype(dtype)
        feed[f"in_{suffix}"] = value
    return feed
