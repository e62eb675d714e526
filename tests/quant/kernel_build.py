"""Compiling the quantized test models for one integer kernel, what they ran on, and
comparing a model's outputs with ONNX Runtime's bit for bit."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from kiln import compile as compile_model
from kiln.driver import compile_detailed
from kiln.runtime import load
from kiln.runtime.manifest import read_manifest
from kiln.targets.x86_64 import host_features

VNNI = "avx512_vnni" in host_features()
#: kernel -> the --cpu that selects it (x86-64-v4 has AVX-512 but no VNNI)
KERNELS = {"int8_gemm_vnni": "native", "portable": "x86-64-v4"}
PORTABLE = {"qmatmul_loops", "qconv_direct"}
#: the VNNI kernels: the GEMM (qmatmul, an NCHW qconv2d) and the NHWC conv
VNNI_KERNELS = {"int8_gemm_vnni", "int8_conv_nhwc_vnni"}
#: what an NHWC conv adds around itself: transposes where the model's tensors are NCHW, a
#: channel pad to whole words (passes/pad_qconv_channels.py)
LAYOUT = {"transpose_loops", "pad_loops"}


def compile_for(tmp_path, model, kernel: str, **options):
    """(compile result, the set of kernels its manifest records) for `kernel`'s --cpu."""
    result = compile_detailed(model, output=str(tmp_path / "model.so"), cpu=KERNELS[kernel],
                              keep_sources=str(tmp_path / "src"), verify=True, **options)
    return result, kernels_of(result.library)


def kernels_of(library) -> set[str]:
    """Every kernel the artifact's manifest records, over its CPU levels."""
    manifest = read_manifest(str(library))
    return {g["kernel"] for level in manifest["levels"] for g in level["schedules"]}


def assert_bits_equal_onnxruntime(tmp_path, model, feed: dict, what: str) -> None:
    """Compile `model` (default options), run it on `feed` beside ONNX Runtime, and require
    every output equal bit for bit, dtype and shape included."""
    expected = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, feed)
    library = compile_model(model, output=str(tmp_path / "model.so"))
    with load(library) as session:
        got = list(session.run(feed).values())
    assert len(got) == len(expected)
    for index, (g, e) in enumerate(zip(got, expected)):
        assert g.dtype == e.dtype and g.shape == e.shape, (what, index)
        np.testing.assert_array_equal(g, e, err_msg=f"output {index} of {what}")
