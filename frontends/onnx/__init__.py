"""ONNX frontend: load, scan, pin dims and convert to graph IR."""

from .importer import import_model, scan  # noqa: F401
from .loader import load_model  # noqa: F401
