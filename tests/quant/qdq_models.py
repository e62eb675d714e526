"""QDQ models: a small float CNN quantized by onnxruntime's own quantize_static, and
hand-written QDQ chains with the forms its quantizer does not write (a Relu before the
QuantizeLinear, a per-column MatMul weight with a bias Add)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_static)

INPUT = (1, 3, 16, 16)


def float_cnn(rng: np.random.Generator) -> onnx.ModelProto:
    """conv 3->32, relu, conv 32->64 stride 2, relu, global average pool, flatten, gemm
    64->16 (transB)."""
    def init(name, shape, gain):
        return numpy_helper.from_array((rng.standard_normal(shape) * gain).astype(np.float32),
                                       name)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1] * 4),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1] * 4, strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1)]
    inits = [init("w1", (32, 3, 3, 3), 0.3), init("b1", (32,), 0.1),
             init("w2", (64, 32, 3, 3), 0.08), init("b2", (64,), 0.1),
             init("wf", (16, 64), 0.3), init("bf", (16,), 0.1)]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, list(INPUT))], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


class _Samples(CalibrationDataReader):
    def __init__(self, rng: np.random.Generator, count: int = 8):
        self.samples = iter([{"x": rng.standard_normal(INPUT).astype(np.float32)}
                             for _ in range(count)])

    def get_next(self):
        return next(self.samples, None)


def quantized_cnn(tmp_path, rng, per_channel: bool, activations=QuantType.QUInt8,
                  float_output: bool = False) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(float model, its QDQ form by quantize_static calibrated on 8 random inputs);
    float_output: the Gemm's output is left unquantized (dequantize epilogue)."""
    model = float_cnn(rng)
    source, target = tmp_path / "float.onnx", tmp_path / "qdq.onnx"
    onnx.save(model, source)
    extra = {"ActivationSymmetric": activations == QuantType.QInt8}
    if float_output:
        extra["OpTypesToExcludeOutputQuantization"] = ["Gemm"]
    quantize_static(str(source), str(target), _Samples(rng), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, activation_type=activations,
                    weight_type=QuantType.QInt8, extra_options=extra)
    return model, onnx.load(target)


def _q(name: str, scale: float, zero: int, dtype) -> list:
    return [numpy_helper.from_array(np.array(scale, np.float32), f"{name}_s"),
            numpy_helper.from_array(np.array(zero, dtype), f"{name}_z")]


def _qdq(x: str, name: str) -> list:
    return [helper.make_node("QuantizeLinear", [x, f"{name}_s", f"{name}_z"], [f"{name}_q"]),
            helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"],
                             [f"{name}_dq"])]


def _weight(rng, name: str, shape, axis: int) -> tuple[list, list]:
    """A per-axis int8 weight (symmetric) and its DequantizeLinear."""
    w = rng.integers(-127, 128, shape).astype(np.int8)
    scale = rng.uniform(0.002, 0.01, shape[axis]).astype(np.float32)
    inits = [numpy_helper.from_array(w, name), numpy_helper.from_array(scale, f"{name}_s"),
             numpy_helper.from_array(np.zeros(shape[axis], np.int8), f"{name}_z")]
    node = helper.make_node("DequantizeLinear", [name, f"{name}_s", f"{name}_z"],
                            [f"{name}_dq"], axis=axis)
    return inits, [node]


def relu_chains(rng) -> tuple[onnx.ModelProto, dict]:
    """Q/DQ(x) -> Conv(DQ w, float bias) -> Relu -> Q/DQ -> Reshape -> Q/DQ ->
    MatMul(DQ W per column) -> Add(bias) -> Relu -> Q/DQ."""
    inits = _q("x", 0.03, 128, np.uint8) + _q("c", 0.02, 0, np.uint8) \
        + _q("f", 0.02, 0, np.uint8) + _q("y", 0.05, 10, np.uint8)
    w_inits, w_nodes = _weight(rng, "w", (8, 4, 3, 3), 0)
    m_inits, m_nodes = _weight(rng, "m", (8 * 36, 24), 1)
    inits += w_inits + m_inits + [
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32) * 0.2, "b"),
        numpy_helper.from_array(rng.standard_normal(24).astype(np.float32) * 0.2, "mb"),
        numpy_helper.from_array(np.array([2, 8 * 36], np.int64), "shape")]
    nodes = w_nodes + m_nodes + _qdq("x", "x") + [
        helper.make_node("Conv", ["x_dq", "w_dq", "b"], ["c"], pads=[0] * 4, strides=[1, 1]),
        helper.make_node("Relu", ["c"], ["cr"])] + _qdq("cr", "c") + [
        helper.make_node("Reshape", ["c_dq", "shape"], ["flat"])] + _qdq("flat", "f") + [
        helper.make_node("MatMul", ["f_dq", "m_dq"], ["mm"]),
        helper.make_node("Add", ["mm", "mb"], ["mma"]),
        helper.make_node("Relu", ["mma"], ["mr"])] + _qdq("mr", "y")
    graph = helper.make_graph(nodes, "relu_chains", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [2, 4, 8, 8])], [helper.make_tensor_value_info(
            "y_dq", TensorProto.FLOAT, [2, 24])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    feed = {"x": rng.standard_normal((2, 4, 8, 8)).astype(np.float32)}
    return model, feed


def dequantized_embedding(rng, rows: int = 4000, width: int = 64) -> tuple[onnx.ModelProto,
                                                                            dict]:
    """Gather(DequantizeLinear(int8 table), ids), as quantize_dynamic writes embeddings."""
    table = rng.integers(-128, 128, (rows, width)).astype(np.int8)
    inits = [numpy_helper.from_array(table, "table"),
             numpy_helper.from_array(np.array(0.013, np.float32), "table_s"),
             numpy_helper.from_array(np.array(3, np.int8), "table_z")]
    nodes = [helper.make_node("DequantizeLinear", ["table", "table_s", "table_z"], ["t"]),
             helper.make_node("Gather", ["t", "ids"], ["y"])]
    graph = helper.make_graph(nodes, "embedding", [helper.make_tensor_value_info(
        "ids", TensorProto.INT64, [2, 7])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [2, 7, width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model, {"ids": rng.integers(0, rows, (2, 7)).astype(np.int64)}
