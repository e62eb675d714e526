"""Whole models: the six CNN test models and the three built architectures (unit-variance
weights) compile for x86_64 and match ONNX Runtime on the output's own scale."""

from __future__ import annotations

import numpy as np
import pytest

from reference import assert_model_output, run_onnxruntime
from kiln import zoo


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.CNN_MODELS + zoo.BUILT_MODELS)
def test_cnn_matches_onnxruntime(name, compile_and_load):
    model = zoo.load(name)
    session = compile_and_load(model, dims={"batch": 1})
    (spec,) = session.inputs
    assert spec.shape == (1, 3, 224, 224)
    x = np.random.default_rng(7).standard_normal(spec.shape).astype(np.float32)
    (expected,) = run_onnxruntime(model, {spec.name: x})
    actual = session.run({spec.name: x})
    (value,) = actual.values()
    assert_model_output(value, expected, what=name)


@pytest.mark.slow
def test_batch_two_from_the_same_file(compile_and_load):
    model = zoo.load("resnet18")
    session = compile_and_load(model, dims={"batch": 2})
    x = np.random.default_rng(3).standard_normal((2, 3, 224, 224)).astype(np.float32)
    (expected,) = run_onnxruntime(model, {"input": x})
    assert_model_output(session.run({"input": x})["output"], expected)
