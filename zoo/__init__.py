"""Kiln's example models: real architectures shipped with their weights stripped, refilled here.

The quickstart, the benchmarks and the tests use them (`kiln.zoo.load("resnet18")`); they ship
inside the package, so an installed Kiln has them without a checkout or a download.

Every stripped tensor (external data at location STRIPPED) keeps its name, dtype and dims; its
values are regenerated deterministically from its name (CRC32 as the seed, standard normal
scaled by 1/sqrt(fan-in)), so tests and benchmarks see the same weights everywhere.

That plain refill lets activations shrink layer after layer (MobileNetV2's outputs end near
5e-7), so by default `load` also rescales every layer (Conv, Gemm, MatMul, embedding Gather:
refilled weights and the small ones kept as exported) to unit output variance (LSUV). The
factors are data, `data/<name>.scales.json` (tensor name -> factor: a layer's weight and its
bias), measured once with ONNX Runtime by `python -m kiln.zoo.rescale`; applying them needs
neither a runtime nor a measurement.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

MODELS_DIR = Path(__file__).parent / "data"

CNN_MODELS = ["resnet18", "resnet18_dynamo", "mobilenet_v2", "mobilenet_v2_dynamo",
              "squeezenet1_1", "squeezenet1_1_dynamo"]
BERT_MODELS = ["bert_small_random", "bert_small_random_dynamo"]
#: Architectures built by this package (zoo/architectures.py), not exported: image models.
BUILT_MODELS = ["efficientnet_b0", "mobilenet_v3_small", "densenet121"]
MODELS = CNN_MODELS + BERT_MODELS + BUILT_MODELS


def stripped_value(name: str, dims: list[int]) -> np.ndarray:
    """The deterministic stand-in for a stripped weight called `name`."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    fan_in = math.prod(dims[1:])
    return (rng.standard_normal(dims) / math.sqrt(fan_in)).astype(np.float32)


def materialize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fill every stripped initializer in place; returns the model."""
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = {e.key: e.value for e in tensor.external_data}.get("location")
        if location != "STRIPPED":
            continue
        filled = numpy_helper.from_array(stripped_value(tensor.name, list(tensor.dims)),
                                         tensor.name)
        tensor.Clear()
        tensor.CopyFrom(filled)
    return model


def stripped_names(model: onnx.ModelProto) -> list[str]:
    """The initializers `materialize` refills (external data at location STRIPPED)."""
    return [t.name for t in model.graph.initializer
            if t.data_location == onnx.TensorProto.EXTERNAL
            and {e.key: e.value for e in t.external_data}.get("location") == "STRIPPED"]


def scales_path(name: str) -> Path:
    return MODELS_DIR / f"{name}.scales.json"


def scale_factors(name: str) -> dict[str, float]:
    """The committed unit-variance factors of an example model: tensor name -> factor."""
    return json.loads(scales_path(name).read_text())["factors"]


def apply_factors(model: onnx.ModelProto, factors: dict[str, float]) -> onnx.ModelProto:
    """Multiply each named initializer by its factor (in float32), in place; returns the
    model. A factor naming no initializer is an error: the factors are stale."""
    tensors = {t.name: t for t in model.graph.initializer}
    missing = sorted(set(factors) - set(tensors))
    if missing:
        raise KeyError(f"scale factors for tensors the model lacks: {missing[:5]}")
    for name, factor in factors.items():
        tensor = tensors[name]
        value = numpy_helper.to_array(tensor)
        scaled = (value * np.asarray(factor, value.dtype)).astype(value.dtype)
        tensor.CopyFrom(numpy_helper.from_array(scaled, name))
    return model


def load(name: str, unit_variance: bool = True) -> onnx.ModelProto:
    """An example model by name (see MODELS), weights filled in; with
    `unit_variance` (the default) rescaled so each layer's output has unit variance, as a
    trained model's roughly would. `unit_variance=False` keeps the plain
    refill."""
    path = MODELS_DIR / f"{name}.onnx"
    model = materialize(onnx.load(str(path), load_external_data=False))
    return apply_factors(model, scale_factors(name)) if unit_variance else model
