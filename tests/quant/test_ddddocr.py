"""ddddocr's default captcha recogniser (ddddocr==1.6.1, common_old.onnx: a CRNN that ONNX
Runtime's quantize_dynamic wrote as DynamicQuantizeLinear -> ConvInteger / MatMulInteger and
a bidirectional com.microsoft DynamicQuantizeLSTM, real weights) compiled by Kiln: on a
captcha-like image drawn here, its decoded characters equal ONNX Runtime's, decoded as
ddddocr does (argmax per timestep, repeats merged, blank 0 dropped, the wheel's charset);
the weights stay 8-bit (the artifact's weights within 5% of the model's 8-bit
initializers: no conv or LSTM weight widened to int32 or float)."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import kiln
from kiln.runtime import load
from pypi_models import DDDDOCR, REAL_MODELS, require_real_model, unpacked_wheel

from kiln.runtime.manifest import read_manifest

from kernel_build import kernels_of

MODEL = "ddddocr_common_old"

#: 5x7 bitmaps of the characters drawn
GLYPHS = {
    "2": ("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
    "7": ("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
    "K": ("10001", "10010", "10100", "11000", "10100", "10010", "10001"),
    "3": ("11110", "00001", "00001", "01110", "00001", "00001", "11110"),
    "X": ("10001", "10001", "01010", "00100", "01010", "10001", "10001"),
    "H": ("10001", "10001", "10001", "11111", "10001", "10001", "10001"),
}


def captcha(text: str, width: int, rng: np.random.Generator) -> np.ndarray:
    """Dark glyphs (6x scaled, jittered) on a light noisy background, as ddddocr feeds its
    model: grayscale, 64 rows, scaled to [0, 1], shape [1, 1, 64, width]."""
    image = np.full((64, width), 235.0)
    for i, char in enumerate(text):
        glyph = np.kron(np.array([[c == "1" for c in row] for row in GLYPHS[char]], float),
                        np.ones((6, 6)))
        top, left = 10 + int(rng.integers(-3, 4)), 14 + 40 * i + int(rng.integers(-3, 4))
        image[top:top + 42, left:left + 30] -= 200 * glyph
    image += rng.normal(0, 8, image.shape)
    pixels = np.clip(image, 0, 255).astype(np.uint8).astype(np.float32) / 255.0
    return pixels[None, None]


def decode(logits: np.ndarray, charset: list[str]) -> str:
    """ddddocr's CTC decoding of [steps, 1, classes] logits."""
    chars, previous = [], None
    for index in np.argmax(logits[:, 0, :], axis=1):
        if index != previous and index != 0:
            chars.append(charset[index])
        previous = index
    return "".join(chars)


def _charset() -> list[str]:
    """CHARSET_OLD from the wheel's charsets.py (a data module: one list literal)."""
    path = unpacked_wheel(*DDDDOCR) / "ddddocr" / "charsets.py"
    spec = importlib.util.spec_from_file_location("ddddocr_charsets", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CHARSET_OLD


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """(model path, compiled library, kernels) shared by the module's tests."""
    path = require_real_model(MODEL)
    library = kiln.compile(str(path), output=str(tmp_path_factory.mktemp("ddddocr") / "m.so"),
                           shapes=REAL_MODELS[MODEL].shapes)
    return path, library, kernels_of(library)


def test_decoded_text_equals_onnxruntime(compiled):
    path, library, kernels = compiled
    assert kernels & {"int8_gemm_vnni", "qmatmul_loops"}, kernels
    width = REAL_MODELS[MODEL].shapes["input1"][3]
    image = captcha("27HK3X", width, np.random.default_rng(0))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {"input1": image})
    with load(library) as kiln_session:
        (got,) = kiln_session.run({"input1": image}).values()
    charset = _charset()
    text = decode(expected, charset)
    assert len(text) >= 4, text   # the drawing reads as a captcha, not as noise
    assert decode(got, charset) == text
    np.testing.assert_allclose(got, expected, atol=1e-3 * float(np.abs(expected).max()))


def test_weights_stay_8bit_but_the_recurrent_ones(compiled):
    path, library, kernels = compiled
    assert "conv_direct" not in kernels, kernels   # every ConvInteger on qconv2d
    graph = onnx.load(str(path)).graph
    stored = {i.name: numpy_helper.to_array(i).nbytes for i in graph.initializer}
    # the loop over time runs its product by R in float32: R is the one weight 4x wider
    recurrent = sum(stored[n.input[2]] for n in graph.node if n.op_type == "DynamicQuantizeLSTM")
    assert recurrent > 0
    (level,) = read_manifest(str(library))["levels"]
    expected = sum(stored.values()) + 3 * recurrent
    assert level["weight_bytes"] <= 1.05 * expected, (level["weight_bytes"], expected)
