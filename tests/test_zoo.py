"""The example models (kiln.zoo): the committed unit-variance factors still bring every
layer's output (Conv, Gemm, MatMul, embedding Gather) to unit variance (measured by ONNX Runtime on another seed than the
one they were measured on), so activations are O(1) as in a trained model; the plain refill
is still there on request."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from kiln import zoo
from kiln.zoo.rescale import random_feed, run_values, weighted_layers


def _refilled(name: str) -> set[str]:
    path = zoo.MODELS_DIR / f"{name}.onnx"
    return set(zoo.stripped_names(onnx.load(str(path), load_external_data=False)))


@pytest.mark.parametrize("name", zoo.CNN_MODELS + zoo.BERT_MODELS)
def test_every_layer_has_unit_variance(name):
    model = zoo.load(name)
    layers = weighted_layers(model)
    assert _refilled(name) <= {layer.weight for layer in layers}    # every refilled tensor
    assert set(zoo.scale_factors(name)) == {n for layer in layers
                                            for n in (layer.weight, layer.bias) if n}
    outputs = [value.name for value in model.graph.output]
    values = run_values(model, [layer.output for layer in layers] + outputs,
                        random_feed(model, seed=1))
    stds = {layer.output: float(np.std(v)) for layer, v in zip(layers, values)}
    off = {k: round(v, 3) for k, v in stds.items() if not 0.5 <= v <= 2}
    assert not off, f"{name}: layers off unit variance: {off}"
    for output, value in zip(outputs, values[len(layers):]):
        assert np.isfinite(value).all(), f"{name}:{output} not finite"
        assert 0.1 <= np.std(value) <= 10, f"{name}:{output} std {np.std(value):.3g}"


def test_the_plain_refill_is_what_made_mobilenet_vanish():
    """Why the factors exist: without them MobileNetV2's outputs are ~1e-7."""
    plain = zoo.load("mobilenet_v2", unit_variance=False)
    (output,) = run_values(plain, ["output"], random_feed(plain, seed=1))
    assert np.std(output) < 1e-5
    assert zoo.load("mobilenet_v2").SerializeToString() != plain.SerializeToString()
