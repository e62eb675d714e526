"""Kiln: an ahead-of-time compiler from ONNX models to self-contained shared libraries."""

from .compiler.errors import KilnError, UnsupportedModelError  # noqa: F401

__version__ = "0.1.0"


def compile(model, target: str = "host", output: str = "model.so", dims=None, shapes=None,
            **options):
    """Compile `model` (a path, bytes or onnx.ModelProto) for `target`; returns the .so path."""
    from .driver import compile_model

    return compile_model(model, target=target, output=output, dims=dims, shapes=shapes,
                         **options)
