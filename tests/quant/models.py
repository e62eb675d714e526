"""Single-node quantized models (QLinearConv, QLinearMatMul, MatMulInteger, ConvInteger) with
their weights, scales and zero points as initializers, as quantizers write them."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_ONNX = {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8,
         np.dtype(np.int32): TensorProto.INT32, np.dtype(np.float32): TensorProto.FLOAT}


def quantized(rng: np.random.Generator, dtype, shape, symmetric: bool) -> tuple:
    """(values, zero point) of `dtype`: random values over the whole range; the zero point
    is 0 (int8) / 128 (uint8) when symmetric, else an off-centre one."""
    info = np.iinfo(dtype)
    values = rng.integers(info.min, info.max + 1, size=shape).astype(dtype)
    if symmetric:
        zero = 0 if dtype == np.int8 else 128
    else:
        zero = int(rng.integers(info.min + 20, info.max - 20))
    return values, zero


def _model(node: onnx.NodeProto, inputs: list, output, inits: dict) -> onnx.ModelProto:
    graph = helper.make_graph(
        [node], node.op_type, inputs, [output],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _info(name: str, dtype, shape):
    return helper.make_tensor_value_info(name, _ONNX[np.dtype(dtype)], list(shape))


def _zero(dtype, value, per_channel: int = 0, rng=None) -> np.ndarray:
    if per_channel:
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, value - 10), min(info.max, value + 10) + 1,
                            per_channel).astype(dtype)
    return np.array(value, dtype)


def qlinear_matmul(rng, m: int, k: int, n: int, a_dtype, b_dtype, y_dtype, per_axis: bool,
                   symmetric: bool):
    """QLinearMatMul of an [m, k] input by a constant [k, n] weight; returns (model, feed)."""
    a, a_zero = quantized(rng, a_dtype, (m, k), symmetric)
    b, b_zero = quantized(rng, b_dtype, (k, n), symmetric)
    _, y_zero = quantized(rng, y_dtype, (1,), symmetric)
    b_scale = (rng.uniform(0.002, 0.01, n) if per_axis else np.array(0.005)).astype(np.float32)
    inits = {"a_scale": np.float32(0.02), "a_zero": _zero(a_dtype, a_zero), "b": b,
             "b_scale": b_scale,
             "b_zero": _zero(b_dtype, b_zero, n if per_axis else 0, rng),
             "y_scale": np.float32(0.05 * np.sqrt(k) / 8), "y_zero": _zero(y_dtype, y_zero)}
    node = helper.make_node("QLinearMatMul", ["a", "a_scale", "a_zero", "b", "b_scale",
                                              "b_zero", "y_scale", "y_zero"], ["y"])
    return _model(node, [_info("a", a_dtype, a.shape)], _info("y", y_dtype, (m, n)),
                  inits), {"a": a}


def matmul_integer(rng, m: int, k: int, n: int, a_dtype, b_dtype, per_axis: bool,
                   symmetric: bool):
    a, a_zero = quantized(rng, a_dtype, (2, m, k), symmetric)
    b, b_zero = quantized(rng, b_dtype, (k, n), symmetric)
    inits = {"a_zero": _zero(a_dtype, a_zero), "b": b,
             "b_zero": _zero(b_dtype, b_zero, n if per_axis else 0, rng)}
    node = helper.make_node("MatMulInteger", ["a", "b", "a_zero", "b_zero"], ["y"])
    return _model(node, [_info("a", a_dtype, a.shape)], _info("y", np.int32, (2, m, n)),
                  inits), {"a": a}


def _conv_node(op: str, inputs: list[str], kernel: int, stride: int, pad: int, group: int,
               dilation: int = 1):
    return helper.make_node(op, inputs, ["y"], kernel_shape=[kernel, kernel],
                            strides=[stride, stride], pads=[pad] * 4, group=group,
                            dilations=[dilation, dilation])


def qlinear_conv(rng, x_dtype, w_dtype, y_dtype, per_axis: bool, symmetric: bool,
                 c: int = 8, oc: int = 16, size: int = 9, kernel: int = 3, stride: int = 1,
                 pad: int = 1, group: int = 1, dilation: int = 1):
    """QLinearConv of a [2, c, size, size] input by a constant weight, with an int32 bias."""
    x, x_zero = quantized(rng, x_dtype, (2, c, size, size), symmetric)
    w, w_zero = quantized(rng, w_dtype, (oc, c // group, kernel, kernel), symmetric)
    _, y_zero = quantized(rng, y_dtype, (1,), symmetric)
    w_scale = (rng.uniform(0.002, 0.01, oc) if per_axis else np.array(0.005)).astype(
        np.float32)
    depth = c // group * kernel * kernel
    inits = {"x_scale": np.float32(0.02), "x_zero": _zero(x_dtype, x_zero), "w": w,
             "w_scale": w_scale, "w_zero": _zero(w_dtype, w_zero, oc if per_axis else 0, rng),
             "y_scale": np.float32(0.05 * np.sqrt(depth) / 8), "y_zero": _zero(y_dtype, y_zero),
             "bias": rng.integers(-2000, 2000, oc).astype(np.int32)}
    node = _conv_node("QLinearConv", ["x", "x_scale", "x_zero", "w", "w_scale", "w_zero",
                                      "y_scale", "y_zero", "bias"], kernel, stride, pad, group,
                      dilation)
    out = (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
    return _model(node, [_info("x", x_dtype, x.shape)],
                  _info("y", y_dtype, (2, oc, out, out)), inits), {"x": x}


def conv_integer(rng, x_dtype, w_dtype, symmetric: bool, c: int = 8, oc: int = 16,
                 size: int = 9, kernel: int = 3, stride: int = 1, pad: int = 1):
    x, x_zero = quantized(rng, x_dtype, (1, c, size, size), symmetric)
    w, w_zero = quantized(rng, w_dtype, (oc, c, kernel, kernel), symmetric)
    inits = {"x_zero": _zero(x_dtype, x_zero), "w": w, "w_zero": _zero(w_dtype, w_zero)}
    node = _conv_node("ConvInteger", ["x", "w", "x_zero", "w_zero"], kernel, stride, pad, 1)
    out = (size + 2 * pad - kernel) // stride + 1
    return _model(node, [_info("x", x_dtype, x.shape)],
                  _info("y", np.int32, (1, oc, out, out)), inits), {"x": x}


def _ms_model(nodes: list, inputs: list, output, inits: dict) -> onnx.ModelProto:
    """A model over ONNX opset 13 and ONNX Runtime's com.microsoft ops."""
    graph = helper.make_graph(
        nodes, nodes[-1].op_type, inputs, [output],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model


def _weight(rng, dtype, k: int, n: int, per_axis: bool):
    """(B, b_scale, b_zero) of a quantized [k, n] weight, per tensor or per column."""
    b, b_zero = quantized(rng, dtype, (k, n), False)
    scale = (rng.uniform(0.002, 0.01, n) if per_axis else np.array(0.005)).astype(np.float32)
    return b, scale, _zero(dtype, b_zero, n if per_axis else 0, rng)


def dynamic_matmul_integer(rng, m: int, k: int, n: int, b_dtype, per_axis: bool):
    """DynamicQuantizeLinear(x) -> MatMulInteger(x_q, B, x_zero, B_zero): the run-time zero
    point of A, as onnxruntime's quantize_dynamic writes encoders."""
    x = rng.standard_normal((2, m, k)).astype(np.float32) * 3 + 0.5
    b, _, b_zero = _weight(rng, b_dtype, k, n, per_axis)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             helper.make_node("MatMulInteger", ["xq", "b", "xz", "b_zero"], ["y"])]
    return _ms_model(nodes, [_info("x", np.float32, x.shape)],
                     _info("y", np.int32, (2, m, n)), {"b": b, "b_zero": b_zero}), {"x": x}


def dynamic_conv_integer(rng, w_dtype, stride: int, pad: int, group: int, c: int = 8,
                         oc: int = 16, size: int = 11):
    """DynamicQuantizeLinear(x) -> ConvInteger(x_q, W, x_zero, W_zero): the run-time zero
    point of x, as onnxruntime's quantize_dynamic writes CNNs (ddddocr's)."""
    x = rng.standard_normal((2, c, size, size)).astype(np.float32) * 2 + 0.7
    w, w_zero = quantized(rng, w_dtype, (oc, c // group, 3, 3), False)
    inits = {"w": w, "w_zero": _zero(w_dtype, w_zero)}
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             _conv_node("ConvInteger", ["xq", "w", "xz", "w_zero"], 3, stride, pad, group)]
    out = (size + 2 * pad - 3) // stride + 1
    return _ms_model(nodes, [_info("x", np.float32, x.shape)],
                     _info("y", np.int32, (2, oc, out, out)), inits), {"x": x}


def matmul_integer_to_float(rng, m: int, k: int, n: int, b_dtype, per_axis: bool,
                            bias: bool):
    """com.microsoft MatMulIntegerToFloat with A's scale and zero point as run-time inputs."""
    a, _ = quantized(rng, np.uint8, (m, k), False)
    b, b_scale, b_zero = _weight(rng, b_dtype, k, n, per_axis)
    inits = {"b": b, "b_scale": b_scale, "b_zero": b_zero}
    names = ["a", "b", "a_scale", "b_scale", "a_zero", "b_zero"]
    if bias:
        inits["bias"] = rng.standard_normal(n).astype(np.float32)
        names.append("bias")
    feed = {"a": a, "a_scale": np.array([0.0173], np.float32),
            "a_zero": np.array([131], np.uint8)}
    node = helper.make_node("MatMulIntegerToFloat", names, ["y"], domain="com.microsoft")
    return _ms_model([node], [_info("a", np.uint8, a.shape), _info("a_scale", np.float32, (1,)),
                              _info("a_zero", np.uint8, (1,))],
                     _info("y", np.float32, (m, n)), inits), feed


def dynamic_quantize_matmul(rng, m: int, k: int, n: int, b_dtype):
    """com.microsoft DynamicQuantizeMatMul: A float, quantized at run time; with a bias."""
    x = rng.standard_normal((m, k)).astype(np.float32) * 2 - 0.3
    b, b_scale, b_zero = _weight(rng, b_dtype, k, n, False)
    inits = {"b": b, "b_scale": b_scale, "b_zero": b_zero,
             "bias": rng.standard_normal(n).astype(np.float32)}
    node = helper.make_node("DynamicQuantizeMatMul", ["x", "b", "b_scale", "b_zero", "bias"],
                            ["y"], domain="com.microsoft")
    return _ms_model([node], [_info("x", np.float32, x.shape)], _info("y", np.float32, (m, n)),
                     inits), {"x": x}


def qgemm(rng, m: int, k: int, n: int, a_dtype, y_dtype, per_axis: bool):
    """com.microsoft QGemm of A by a transposed constant B (transB=1) with an int32 C and
    alpha; y_dtype None: a float output."""
    a, a_zero = quantized(rng, a_dtype, (m, k), False)
    b, b_scale, b_zero = _weight(rng, np.int8, k, n, per_axis)
    inits = {"a_scale": np.float32(0.02), "a_zero": _zero(a_dtype, a_zero), "b": b.T.copy(),
             "b_scale": b_scale, "b_zero": b_zero,
             "c": rng.integers(-3000, 3000, n).astype(np.int32)}
    names = ["a", "a_scale", "a_zero", "b", "b_scale", "b_zero", "c"]
    out = np.float32
    if y_dtype is not None:
        _, y_zero = quantized(rng, y_dtype, (1,), False)
        inits.update(y_scale=np.float32(0.05 * np.sqrt(k) / 8), y_zero=_zero(y_dtype, y_zero))
        names += ["y_scale", "y_zero"]
        out = y_dtype
    node = helper.make_node("QGemm", names, ["y"], domain="com.microsoft", alpha=0.75,
                            transB=1)
    return _ms_model([node], [_info("a", a_dtype, a.shape)], _info("y", out, (m, n)),
                     inits), {"a": a}


def quantize_dynamic_matmul(rng, m: int, k: int, n: int, per_axis: bool):
    """The matmul onnxruntime's quantize_dynamic writes: DynamicQuantizeLinear(x) ->
    MatMulInteger -> Cast(float) -> Mul(x_scale * w_scale) -> Add(bias)."""
    x = rng.standard_normal((2, m, k)).astype(np.float32) * 2 + 0.3
    b, w_scale, b_zero = _weight(rng, np.int8, k, n, per_axis)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             helper.make_node("MatMulInteger", ["xq", "b", "xz", "b_zero"], ["acc"]),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["xs", "w_scale"], ["scale"]),
             helper.make_node("Mul", ["accf", "scale"], ["scaled"]),
             helper.make_node("Add", ["scaled", "bias"], ["y"])]
    inits = {"b": b, "b_zero": b_zero, "w_scale": w_scale,
             "bias": rng.standard_normal(n).astype(np.float32)}
    return _ms_model(nodes, [_info("x", np.float32, x.shape)],
                     _info("y", np.float32, (2, m, n)), inits), {"x": x}
