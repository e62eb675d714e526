"""Run-time activation quantization on the integer kernels, against ONNX Runtime:
DynamicQuantizeLinear -> MatMulInteger (A's zero point computed at run time, as
onnxruntime's quantize_dynamic writes encoders) exactly equal, and the com.microsoft ops its
quantizers emit (MatMulIntegerToFloat, DynamicQuantizeMatMul, QGemm): integer outputs exactly
equal, float outputs within one step of the accumulator's scale; B stays 8-bit."""

from __future__ import annotations

import zlib

import numpy as np
import onnxruntime as ort
import pytest

from kiln.runtime import load

import models
from kernel_build import KERNELS, PORTABLE, VNNI, VNNI_KERNELS, compile_for

S8, U8 = np.int8, np.uint8


def _cases():
    """(id, builder, step): step is the float output's quantization step (None: exact)."""
    return [
        ("dynamic_matmul_integer_int8", lambda r: models.dynamic_matmul_integer(
            r, 24, 64, 40, S8, True), None),
        ("dynamic_matmul_integer_uint8_odd_k", lambda r: models.dynamic_matmul_integer(
            r, 5, 37, 20, U8, False), None),
        ("matmul_integer_to_float_int8_bias", lambda r: models.matmul_integer_to_float(
            r, 19, 48, 36, S8, False, True), 0.0173 * 0.01),
        ("matmul_integer_to_float_uint8", lambda r: models.matmul_integer_to_float(
            r, 7, 33, 17, U8, False, False), 0.0173 * 0.01),
        ("dynamic_quantize_matmul_int8", lambda r: models.dynamic_quantize_matmul(
            r, 16, 64, 48, S8), 1.5e-4),
        ("qgemm_uint8_float", lambda r: models.qgemm(r, 13, 40, 24, U8, None, True),
         0.75 * 0.02 * 0.01),
        ("qgemm_uint8_uint8", lambda r: models.qgemm(r, 13, 40, 24, U8, U8, False), None),
        ("qgemm_int8_int8", lambda r: models.qgemm(r, 9, 64, 33, S8, S8, True), None),
    ]


@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("name,build,step", _cases(), ids=[c[0] for c in _cases()])
def test_outputs_match_onnxruntime(tmp_path, kernel, name, build, step):
    if kernel == "int8_gemm_vnni" and not VNNI:
        pytest.skip("this CPU has no avx512_vnni: the VNNI kernel cannot run here")
    model, feed = build(np.random.default_rng(zlib.crc32(name.encode())))
    expected = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, feed)[0]
    result, kernels = compile_for(tmp_path, model, kernel)
    integer = kernels & ({"int8_gemm_vnni"} | PORTABLE)
    assert integer == ({"int8_gemm_vnni"} if kernel == "int8_gemm_vnni" else {"qmatmul_loops"}), \
        kernels
    with load(result.library) as session:
        (got,) = session.run(feed).values()
    assert got.dtype == expected.dtype
    if step is None:
        np.testing.assert_array_equal(got, expected)
    else:
        worst = float(np.max(np.abs(got - expected)))
        assert worst <= step, (worst, step)


@pytest.mark.parametrize("per_axis", [False, True], ids=["per_tensor", "per_column"])
def test_quantize_dynamic_tail_joins_the_epilogue(tmp_path, per_axis):
    """Cast, the scale Mul and the bias Add after MatMulInteger become qmatmul's float32
    epilogue (passes/fuse_integer_dequantize.py): no float op is left after it, and the
    output is ONNX Runtime's within one step of the accumulator's scale."""
    from kiln.frontends.onnx import import_model
    from kiln.passes.manager import run_passes

    model, feed = models.quantize_dynamic_matmul(np.random.default_rng(4), 20, 64, 48,
                                                 per_axis)
    graph = run_passes(import_model(model), verify_each=True)
    (anchor,) = [n for n in graph.nodes if n.op == "qmatmul"]
    assert anchor.attrs["out"] == "float32" and anchor.output is graph.outputs[0]
    expected = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, feed)[0]
    result, kernels = compile_for(tmp_path, model, "int8_gemm_vnni" if VNNI else "portable")
    with load(result.library) as session:
        (got,) = session.run(feed).values()
    x = feed["x"]
    step = (max(x.max(), 0) - min(x.min(), 0)) / 255 * 0.01
    assert float(np.max(np.abs(got - expected))) <= step


@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("w_dtype,stride,pad,group", [
    (S8, 1, 1, 1), (S8, 2, 1, 1), (U8, 1, 0, 1), (S8, 1, 2, 2)],
    ids=["int8_pad1", "int8_stride2", "uint8_no_pad", "int8_grouped_pad2"])
def test_dynamic_conv_integer_stays_8bit(tmp_path, kernel, w_dtype, stride, pad, group):
    """DynamicQuantizeLinear -> ConvInteger (x's zero point computed at run time): the
    int32 result exactly ONNX Runtime's, on qconv2d with the weight 8-bit (x padded with
    its zero point, the zero point's share taken off per channel). Per-tensor weight zero
points: ONNX Runtime's ConvInteger takes no other."""
    if kernel == "int8_gemm_vnni" and not VNNI:
        pytest.skip("this CPU has no avx512_vnni: the VNNI kernel cannot run here")
    model, feed = models.dynamic_conv_integer(np.random.default_rng(11), w_dtype, stride, pad,
                                              group)
    expected = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, feed)[0]
    result, kernels = compile_for(tmp_path, model, kernel)
    assert kernels & (VNNI_KERNELS | PORTABLE), kernels
    assert "conv_direct" not in kernels, kernels   # no int32 float-kernel conv
    with load(result.library) as session:
        (got,) = session.run(feed).values()
    np.testing.assert_array_equal(got, expected)
