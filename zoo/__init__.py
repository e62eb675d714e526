"""Kiln's example models: real architectures shipped with their weights stripped, refilled here.

The quickstart, the benchmarks and the tests use them (`kiln.zoo.load("resnet18")`); they ship
inside the package, so an installed Kiln has them without a checkout or a download.

Every stripped tensor (external data at location STRIPPED) keeps its name, dtype and dims; its
values are regenerated deterministically from its name (CRC32 as the seed, standard normal
scaled by 1/sqrt(fan-in)), so tests and benchmarks see the same weights everywhere.
"""

from __future__ import annotations

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


def load(name: str) -> onnx.ModelProto:
    """An example model by name (see CNN_MODELS, BERT_MODELS), weights filled in."""
    path = MODELS_DIR / f"{name}.onnx"
    return materialize(onnx.load(str(path), load_external_data=False))
