"""com.microsoft DynamicQuantizeLSTM single-node against ONNX Runtime: W and R 8-bit
(int8 and uint8), scales and zero points per direction or per column (these symmetric, as
ONNX Runtime requires), both directions,
with bias, initial states and peepholes; the products run on the integer kernels with the
activations quantized at run time, so outputs agree within a few steps of the activation
quantization (both sides round the same values, float sums differ in order)."""

from __future__ import annotations

import zlib

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import kiln
from kiln.runtime import load

from kernel_build import kernels_of

SEQ, BATCH, INPUT, HIDDEN = 5, 2, 12, 8
CASES = {"int8_per_direction": (np.int8, False, "forward"),
         "int8_per_column_bidirectional": (np.int8, True, "bidirectional"),
         "uint8_per_column_reverse": (np.uint8, True, "reverse")}


def _model(rng: np.random.Generator, dtype, per_column: bool, direction: str):
    dirs = 2 if direction == "bidirectional" else 1
    info = np.iinfo(dtype)
    inits, names = {}, []
    for role, rows in (("W", INPUT), ("R", HIDDEN)):
        shape = (dirs, rows, 4 * HIDDEN)
        inits[role] = rng.integers(info.min, info.max + 1, shape).astype(dtype)
        params = (dirs, 4 * HIDDEN) if per_column else (dirs,)
        inits[f"{role}_scale"] = rng.uniform(0.002, 0.01, params).astype(np.float32)
        # ONNX Runtime takes per-column weights only symmetric (zero points 0)
        spread = 0 if per_column else 5
        inits[f"{role}_zero"] = rng.integers(0, spread + 1, params).astype(dtype)
    inits["B"] = rng.normal(0, 0.3, (dirs, 8 * HIDDEN)).astype(np.float32)
    inits["P"] = rng.normal(0, 0.3, (dirs, 3 * HIDDEN)).astype(np.float32)
    names = ["x", "W", "R", "B", "", "h0", "c0", "P", "W_scale", "W_zero", "R_scale",
             "R_zero"]
    node = helper.make_node("DynamicQuantizeLSTM", names, ["y", "y_h", "y_c"],
                            domain="com.microsoft", hidden_size=HIDDEN, direction=direction)
    state = [BATCH, HIDDEN]
    graph = helper.make_graph(
        [node], "dynamic_quantize_lstm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [SEQ, BATCH, INPUT]),
         helper.make_tensor_value_info("h0", TensorProto.FLOAT, [dirs, *state]),
         helper.make_tensor_value_info("c0", TensorProto.FLOAT, [dirs, *state])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "y_h", "y_c")],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    feed = {"x": rng.normal(0, 1, (SEQ, BATCH, INPUT)).astype(np.float32),
            "h0": rng.normal(0, 0.5, (dirs, *state)).astype(np.float32),
            "c0": rng.normal(0, 0.5, (dirs, *state)).astype(np.float32)}
    return model, feed


@pytest.mark.parametrize("case", list(CASES))
def test_outputs_match_onnxruntime(tmp_path, case):
    model, feed = _model(np.random.default_rng(zlib.crc32(case.encode())), *CASES[case])
    expected = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, feed)
    library = kiln.compile(model, output=str(tmp_path / "lstm.so"))
    assert kernels_of(library) & {"int8_gemm_vnni", "qmatmul_loops"}
    with load(library) as session:
        got = list(session.run(feed).values())
    for name, g, e in zip(("Y", "Y_h", "Y_c"), got, expected):
        assert g.shape == e.shape, name
        worst = float(np.max(np.abs(g - e)))
        assert worst <= 5e-3 * max(1.0, float(np.max(np.abs(e)))), (name, worst)
