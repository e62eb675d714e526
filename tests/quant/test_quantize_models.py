"""Whole test models quantized by Kiln itself, against ONNX Runtime running the float model:
ResNet-18 and MobileNetV2 of kiln.zoo (weights rescaled to unit variance, so activations
are realistic) with --quantize int8 calibrated on 32 inputs, top-1 agreement on 200 others,
half of each crops of real photographs (scikit-image's sample images, photos.py), half
seeded standard-normal images; BERT-small with --quantize dynamic, the cosine of its
output.

MobileNetV2's random weights leave its top two logits close (median gap 0.05 of a logit
standard deviation of 1 on these inputs), so any 8-bit quantization flips many of them:
onnxruntime's own quantize_static (QDQ, per channel, the same samples) agrees on about 79%.
There the test asks Kiln's agreement to reach 98% or ONNX Runtime's, whichever is lower,
with a cosine of 0.999 or more on every output."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from kiln import zoo
from kiln.driver import compile_detailed
from kiln.runtime import load
from onnxruntime.quantization import QuantFormat, quantize_static

from kernel_build import kernels_of
from photos import crops, photographs

CALIBRATION, TEST = 32, 200


def _float_answers(model, feeds: list[dict]) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return np.stack([session.run(None, feed)[0] for feed in feeds])


@pytest.fixture(scope="module")
def images():
    """(calibration, test) inputs: photo crops then random images, half and half."""
    photos = photographs()
    rng = np.random.default_rng(5)

    def mixed(count: int) -> np.ndarray:
        noise = rng.standard_normal((count // 2, 1, 3, 224, 224)).astype(np.float32)
        return np.concatenate([crops(photos, count - count // 2, rng), noise])

    return mixed(CALIBRATION), mixed(TEST)


def _ort_quantized_agreement(tmp_path, model, calibration: np.ndarray, test: np.ndarray,
                             reference: np.ndarray) -> float:
    class Samples:
        def __init__(self):
            self.items = iter({"input": x} for x in calibration)

        def get_next(self):
            return next(self.items, None)

    source, target = tmp_path / "float.onnx", tmp_path / "ort_int8.onnx"
    onnx.save(model, source)
    quantize_static(str(source), str(target), Samples(), quant_format=QuantFormat.QDQ,
                    per_channel=True)
    theirs = _float_answers(onnx.load(str(target)), [{"input": x} for x in test])
    return float(np.mean(theirs.argmax(-1) == reference.argmax(-1)))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_static_int8_cnn_agrees_with_float_on_top1(tmp_path, images, name):
    model = zoo.load(name)
    calibration, test = images
    result = compile_detailed(model, output=str(tmp_path / "q.so"), dims={"batch": 1},
                              quantize="int8", calibration={"input": calibration})
    assert kernels_of(result.library) & {"int8_conv_nhwc_vnni", "qconv_direct"}
    reference = _float_answers(model, [{"input": x} for x in test])
    with load(result.library) as session:
        ours = np.stack([session.run({"input": x})["output"] for x in test])
    same = ours.argmax(-1) == reference.argmax(-1)
    agree = float(np.mean(same))
    photos, noise = float(np.mean(same[:TEST // 2])), float(np.mean(same[TEST // 2:]))
    cosine = np.sum(ours * reference, axis=(1, 2)) / (
        np.linalg.norm(ours, axis=(1, 2)) * np.linalg.norm(reference, axis=(1, 2)))
    required = 0.98
    if agree < required:   # MobileNetV2: see the module docstring
        required = min(required, _ort_quantized_agreement(tmp_path, model, calibration, test,
                                                          reference))
    assert agree >= required, (agree, photos, noise, required, float(cosine.min()))
    assert cosine.min() >= 0.999, float(cosine.min())


@pytest.mark.slow
def test_dynamic_bert_small_output_cosine(tmp_path):
    model = zoo.load("bert_small_random")
    rng = np.random.default_rng(3)
    feeds = [{"input_ids": rng.integers(0, 1000, (1, 128)).astype(np.int64),
              "attention_mask": np.ones((1, 128), np.int64),
              "token_type_ids": np.zeros((1, 128), np.int64)} for _ in range(4)]
    result = compile_detailed(model, output=str(tmp_path / "q.so"),
                              dims={"batch": 1, "seq": 128}, quantize="dynamic")
    assert len(result.quantized) == 4 * 4   # q/k/v share one input; output, ffn in and out
    kernels = kernels_of(result.library)
    assert "int8_gemm_vnni" in kernels or "qmatmul_loops" in kernels
    reference = _float_answers(model, feeds)
    with load(result.library) as session:
        for feed, want in zip(feeds, reference):
            got = next(iter(session.run(feed).values()))
            cosine = float(np.sum(got * want) / np.linalg.norm(got) / np.linalg.norm(want))
            assert cosine >= 0.99, cosine
