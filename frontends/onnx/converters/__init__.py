"""ONNX converters, one module per op family; importing them fills the registry."""

from . import (activations, conv, elementwise, matmul, movement, normalization, pool,  # noqa: F401
               reduce, shape, tensor)
