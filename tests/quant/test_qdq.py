"""QDQ models onto the integer kernels (passes/qdq_to_integer.py), against ONNX Runtime
running the same QDQ model: a small CNN quantized by onnxruntime's quantize_static (per
channel and per tensor, uint8 and symmetric int8 activations, an 8-bit and a float
output) and hand-written chains with a Relu before the quantize. Outputs within one
quantization step of the output; every conv and gemm runs on an integer kernel; weights.bin
about a quarter of the float model's."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from onnxruntime.quantization import QuantType

from kiln.driver import compile_detailed
from kiln.runtime import load

import qdq_models
from kernel_build import KERNELS, LAYOUT, PORTABLE, VNNI, VNNI_KERNELS, compile_for

#: kernels of the ops around the integer ones (pooling, Q/DQ arithmetic, reshapes)
AROUND = {"copy_loops", "elementwise_loops", "reduce_loops"} | LAYOUT
CNN = {"per_channel_uint8": dict(per_channel=True),
       "per_tensor_uint8": dict(per_channel=False),
       "per_channel_int8_symmetric": dict(per_channel=True, activations=QuantType.QInt8),
       "float_output": dict(per_channel=True, float_output=True)}


def _ort(model: onnx.ModelProto, feed: dict) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


def _step(model: onnx.ModelProto) -> float:
    """The output's quantization step: its DequantizeLinear's scale, or for a float
    output the accumulator's (input scale times the largest weight scale)."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    last = next(n for n in model.graph.node if model.graph.output[0].name in n.output)
    if last.op_type == "DequantizeLinear":
        return float(inits[last.input[1]])
    return float(inits["p_scale"]) * float(np.max(inits["wf_scale"]))


def _integer(kernel: str) -> set[str]:
    return VNNI_KERNELS if kernel == "int8_gemm_vnni" else PORTABLE


@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("form", list(CNN))
def test_quantize_static_cnn_matches_onnxruntime(tmp_path, kernel, form):
    if kernel == "int8_gemm_vnni" and not VNNI:
        pytest.skip("this CPU has no avx512_vnni: the VNNI kernel cannot run here")
    rng = np.random.default_rng(7)
    _, model = qdq_models.quantized_cnn(tmp_path, rng, **CNN[form])
    result, kernels = compile_for(tmp_path, model, kernel)
    assert kernels - AROUND <= _integer(kernel) and kernels & _integer(kernel), kernels
    with load(result.library) as session:
        for _ in range(3):
            feed = {"x": rng.standard_normal(qdq_models.INPUT).astype(np.float32)}
            (got,) = session.run(feed).values()
            worst = float(np.max(np.abs(got - _ort(model, feed))))
            assert worst <= _step(model) * 1.001, (worst, _step(model))


def test_weights_about_a_quarter_of_float(tmp_path):
    """The per-channel QDQ CNN's weights.bin against Kiln's build of the float model."""
    float_model, model = qdq_models.quantized_cnn(tmp_path, np.random.default_rng(3), True)
    sizes = []
    for name, m in (("float", float_model), ("int8", model)):
        compile_detailed(m, output=str(tmp_path / f"{name}.so"),
                         keep_sources=str(tmp_path / name))
        sizes.append((tmp_path / name / "weights.bin").stat().st_size)
    assert sizes[1] <= 0.3 * sizes[0], sizes


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_relu_before_quantize_and_matmul_bias(tmp_path, kernel):
    """Conv -> Relu -> Q and MatMul -> Add(bias) -> Relu -> Q, written by hand: integer
    outputs dequantized, within one output step of ONNX Runtime."""
    if kernel == "int8_gemm_vnni" and not VNNI:
        pytest.skip("this CPU has no avx512_vnni: the VNNI kernel cannot run here")
    model, feed = qdq_models.relu_chains(np.random.default_rng(5))
    result, kernels = compile_for(tmp_path, model, kernel)
    assert kernels - AROUND <= _integer(kernel) and kernels & _integer(kernel), kernels
    with load(result.library) as session:
        (got,) = session.run(feed).values()
    expected = _ort(model, feed)
    assert np.max(np.abs(got - expected)) <= 0.05 * 1.001
    assert np.min(expected) >= 0 and np.count_nonzero(expected == 0) > 0   # the Relu bites


def test_dequantized_embedding_gathers_8_bit_rows(tmp_path):
    """Gather of a dequantized int8 table: exactly ONNX Runtime's rows, the table 8-bit in
    weights.bin (256 KiB as float32)."""
    model, feed = qdq_models.dequantized_embedding(np.random.default_rng(2))
    result = compile_detailed(model, output=str(tmp_path / "m.so"),
                              keep_sources=str(tmp_path / "src"), verify=True)
    with load(result.library) as session:
        (got,) = session.run(feed).values()
    np.testing.assert_array_equal(got, _ort(model, feed))
    assert (tmp_path / "src" / "weights.bin").stat().st_size <= 4000 * 64 + 1024
