"""ONNX converters, one module per op family; importing them fills the registry."""

from . import elementwise  # noqa: F401
