"""QLinearConv, QLinearMatMul, MatMulInteger and ConvInteger compiled onto the integer kernels,
against ONNX Runtime: integer outputs exactly equal, over int8/uint8, per-tensor/per-axis
and symmetric/asymmetric zero points; the VNNI kernel (where this CPU has avx512_vnni)
and the portable one (built for x86-64-v4, which has no VNNI); weights stay 8-bit."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from kiln.runtime import load

import models
from kernel_build import KERNELS, LAYOUT, PORTABLE, VNNI, compile_for

S8, U8 = np.int8, np.uint8


def _cases():
    """(id, builder) of each single-node model: ORT's kernels take uint8 or int8 inputs
    with int8 weights, and uint8 with uint8."""
    cases = []
    for a, b in ((U8, S8), (S8, S8), (U8, U8)):
        for per_axis, symmetric in ((False, True), (True, False)):
            tag = f"{np.dtype(a).name}_{np.dtype(b).name}_" \
                  f"{'axis' if per_axis else 'tensor'}_{'sym' if symmetric else 'asym'}"
            cases.append((f"qlinear_matmul_{tag}", lambda r, a=a, b=b, p=per_axis, s=symmetric:
                          models.qlinear_matmul(r, 37, 68, 40, a, b, a, p, s)))
            cases.append((f"qlinear_conv_{tag}", lambda r, a=a, b=b, p=per_axis, s=symmetric:
                          models.qlinear_conv(r, a, b, a, p, s)))
        cases.append((f"matmul_integer_{np.dtype(a).name}_{np.dtype(b).name}",
                      lambda r, a=a, b=b: models.matmul_integer(r, 5, 37, 20, a, b, True,
                                                                False)))
    cases.append(("qlinear_conv_strided_1x1", lambda r: models.qlinear_conv(
        r, U8, S8, U8, True, False, kernel=1, pad=0, stride=2)))
    cases.append(("conv_integer_uint8", lambda r: models.conv_integer(r, U8, S8, False)))
    # the NHWC conv's paths: a 1x1 read in place (int8 input flipped, uint8 weights: row
    # sums), a 7x7 stride-2 stem of 3 channels and channels not a multiple of 4 (padded to
    # whole words by the zero points)
    cases.append(("qlinear_conv_1x1_int8_uint8w", lambda r: models.qlinear_conv(
        r, S8, S8, S8, True, False, kernel=1, pad=0)))
    cases.append(("qlinear_conv_1x1_uint8_uint8w", lambda r: models.qlinear_conv(
        r, U8, U8, U8, True, False, kernel=1, pad=0)))
    cases.append(("qlinear_conv_7x7_stride2_3ch", lambda r: models.qlinear_conv(
        r, U8, S8, U8, True, False, c=3, oc=20, size=23, kernel=7, stride=2, pad=3)))
    cases.append(("qlinear_conv_6ch_uint8w_stride2", lambda r: models.qlinear_conv(
        r, U8, U8, U8, True, False, c=6, oc=40, size=11, stride=2)))
    cases.append(("qlinear_conv_5x5_5ch_int8", lambda r: models.qlinear_conv(
        r, S8, S8, S8, True, False, c=5, oc=17, size=10, kernel=5, pad=2)))
    cases.append(("qlinear_conv_dilated_stride2", lambda r: models.qlinear_conv(
        r, U8, S8, U8, True, False, size=13, stride=2, pad=2, dilation=3)))
    return cases


@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("name,build", _cases(), ids=[n for n, _ in _cases()])
def test_integer_outputs_equal_onnxruntime(tmp_path, kernel, name, build):
    if kernel == "int8_gemm_vnni" and not VNNI:
        pytest.skip("this CPU has no avx512_vnni: the VNNI kernel cannot run here")
    model, feed = build(np.random.default_rng(abs(hash(name)) % 2 ** 32))
    expected = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, feed)[0]
    result, kernels = compile_for(tmp_path, model, kernel)
    if kernel == "int8_gemm_vnni":
        conv = "conv" in name   # NHWC, between the model's NCHW input and output
        assert kernels - LAYOUT == {"int8_conv_nhwc_vnni" if conv else "int8_gemm_vnni"}, \
            kernels
        assert "avx512vnni" in result.checked_features   # session creation checks it
    else:
        assert kernels <= PORTABLE, kernels
    with load(result.library) as session:
        (got,) = session.run(feed).values()
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_weights_stay_8_bit(tmp_path, kernel):
    """A 64x64x3x3 QLinearConv ships its 36 KiB of int8 weights as about 36 KiB (float32
    would be 144 KiB); per-channel scales, zero points and bias add a few hundred bytes."""
    if kernel == "int8_gemm_vnni" and not VNNI:
        pytest.skip("this CPU has no avx512_vnni: the VNNI kernel cannot run here")
    model, _ = models.qlinear_conv(np.random.default_rng(1), U8, S8, U8, True, False, c=64,
                                   oc=64, size=12)
    weight_bytes = 64 * 64 * 3 * 3
    result, _ = compile_for(tmp_path, model, kernel)
    size = (tmp_path / "src" / "weights.bin").stat().st_size
    assert weight_bytes <= size <= weight_bytes + 4096, size
    assert size < 0.27 * 4 * weight_bytes


@pytest.mark.parametrize("wrong", ["b_zero_point", "scale"])
def test_qmatmul_refuses_per_column_constants_of_another_dtype(wrong):
    """The kernels read b_zero_point as int32 and scale as float32: any other dtype would be
    read as garbage, so the op's type rule refuses it."""
    from kiln.compiler.dtypes import DType
    from kiln.compiler.errors import ShapeError
    from kiln.compiler.ir import TensorType
    from kiln.compiler.ops import infer_types

    dtypes = {"b_zero_point": DType.int32, "bias": DType.int32, "scale": DType.float32}
    dtypes[wrong] = DType.int8 if wrong == "b_zero_point" else DType.float64
    types = [TensorType(DType.uint8, (4, 8)), TensorType(DType.int8, (8, 3))] + \
        [TensorType(dtypes[what], (3,)) for what in ("b_zero_point", "bias", "scale")]
    attrs = {"a_zero_point": 0, "out": "uint8", "y_zero_point": 0}
    with pytest.raises(ShapeError, match=wrong):
        infer_types("qmatmul", types, attrs)
