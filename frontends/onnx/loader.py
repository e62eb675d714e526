"""Load an ONNX model (path, bytes or ModelProto; external data too) and check it."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from ...compiler.errors import ModelLoadError

#: The newest default-domain opset Kiln's converters were written against.
MAX_KNOWN_OPSET = 23


def load_model(source: "str | os.PathLike[str] | bytes | onnx.ModelProto",
               external_data: bool = True) -> onnx.ModelProto:
    """Return a checked ModelProto with external data loaded (from the model's folder)
    unless `external_data` is False (enough to look at the graph)."""
    if isinstance(source, onnx.ModelProto):
        model = source
    elif isinstance(source, (bytes, bytearray)):
        model = _parse(bytes(source), "<bytes>")
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ModelLoadError(f"model file '{path}' does not exist")
        model = _parse(path.read_bytes(), str(path))
        if not external_data:
            return model
        try:
            onnx.load_external_data_for_model(model, str(path.parent.resolve()))
        except (OSError, ValueError, onnx.checker.ValidationError) as exc:
            raise ModelLoadError(f"cannot load the external data of '{path}': {exc}") from None
    else:
        raise ModelLoadError(f"expected a path, bytes or onnx.ModelProto, got "
                             f"{type(source).__name__}")
    _check(model)
    return model


def _parse(data: bytes, where: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(f"'{where}' is not a readable ONNX model (truncated or not ONNX: "
                             f"{exc})") from None
    if not model.HasField("graph") or not model.graph.node and not model.graph.output:
        raise ModelLoadError(f"'{where}' is not an ONNX model: it has no graph")
    return model


def _check(model: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        if first.startswith("Field 'shape' of 'type' is required"):
            return   # old-opset rule for declared output shapes; Kiln infers every type itself
        raise ModelLoadError(f"the model is not valid ONNX: {first}") from None
    except ValueError:
        # check_model refuses protos over 2 GiB in memory; the graph is checked as we convert.
        pass


def default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 1
