"""The model comparison itself (reference.assert_model_output): it judges an answer on the
output's own scale, refuses a degenerate reference, and never lets an all-zeros answer pass
against a real model's output (MobileNetV2 by ONNX Runtime)."""

from __future__ import annotations

import numpy as np
import pytest

from reference import assert_matches, assert_model_output, run_onnxruntime
from kiln import zoo


@pytest.fixture(scope="module")
def mobilenet_output():
    x = np.random.default_rng(7).standard_normal((1, 3, 224, 224)).astype(np.float32)
    (unit,) = run_onnxruntime(zoo.load("mobilenet_v2"), {"input": x})
    (plain,) = run_onnxruntime(zoo.load("mobilenet_v2", unit_variance=False), {"input": x})
    return unit, plain


def test_an_all_zeros_answer_fails_against_a_real_output(mobilenet_output):
    unit, plain = mobilenet_output
    with pytest.raises(AssertionError, match="elements off"):
        assert_model_output(np.zeros_like(unit), unit)
    # against the plain refill's vanishing output (~1e-7) the old absolute tolerance passed
    # zeros; the scale-relative comparison refuses the reference itself
    assert_matches(np.zeros_like(plain), plain)
    with pytest.raises(AssertionError, match="degenerate reference"):
        assert_model_output(np.zeros_like(plain), plain)


def test_a_close_answer_passes_and_a_rescaled_one_fails(mobilenet_output):
    unit, _ = mobilenet_output
    noise = np.random.default_rng(0).standard_normal(unit.shape) * 1e-6 * np.abs(unit).max()
    assert_model_output((unit + noise).astype(np.float32), unit)
    with pytest.raises(AssertionError):
        assert_model_output(unit * np.float32(1.02), unit)
    with pytest.raises(AssertionError, match="not finite"):
        assert_model_output(np.full_like(unit, np.nan), unit)
