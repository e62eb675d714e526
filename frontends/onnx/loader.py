"""Load an ONNX model (path, bytes or ModelProto; external data too) and check it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import onnx
from google.protobuf.message import DecodeError

from ...compiler.errors import ModelLoadError

#: The newest default-domain opset Kiln's converters were written against.
MAX_KNOWN_OPSET = 27


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
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"cannot read the model file '{path}': {exc}") from None
        model = _parse(data, str(path))
        if not external_data:
            return model
        check_external_data(model, path.parent)
        try:
            onnx.load_external_data_for_model(model, str(path.parent.resolve()))
        except (OSError, ValueError, onnx.checker.ValidationError) as exc:
            raise ModelLoadError(f"cannot load the external data of '{path}': {exc}") from None
    else:
        raise ModelLoadError(f"expected a path, bytes or onnx.ModelProto, got "
                             f"{type(source).__name__}")
    check_external_data(model, None)
    _check(model)
    return model


def all_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor stored in `graph`: initializers and node attributes, subgraphs too."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values
            if attr.HasField("g"):
                yield from all_tensors(attr.g)
            for sub in attr.graphs:
                yield from all_tensors(sub)


def check_external_data(model: onnx.ModelProto, folder: Path | None) -> None:
    """Refuse external data that is not a regular file inside `folder` (the model's own
    folder, symlinks resolved), or any external data when the model came without a path."""
    for tensor in all_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        where = f"initializer '{tensor.name}' stores its data in external file '{location}'"
        if folder is None:
            raise ModelLoadError(f"{where}, but the model was given as bytes or a ModelProto "
                                 f"with no folder to find it in; pass the .onnx file's path, "
                                 f"or load it with onnx.load(path) first")
        root = folder.resolve()
        if not location or Path(location).is_absolute() or "\0" in location:
            raise ModelLoadError(f"{where}: the location must be a relative path inside the "
                                 f"model's folder; Kiln refuses paths that point outside it")
        target = (root / location).resolve()
        if root != target and root not in target.parents:
            raise ModelLoadError(f"{where}, which points outside the model's folder {root}; "
                                 f"Kiln only reads external data beside the model (move the "
                                 f"file there and fix the location)")
        if not target.is_file():
            raise ModelLoadError(f"{where}, which does not exist in {root}; copy it beside the "
                                 f"model")


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
        text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        text = text or "invalid model"
        if text.startswith("Field 'shape' of 'type' is required"):
            return   # old-opset rule for declared output shapes; Kiln infers every type itself
        if len(text) > 600:
            text = text[:600] + "..."
        raise ModelLoadError(f"the model is not valid ONNX: {text} (onnx.checker.check_model "
                             f"reports the same; fix or re-export the model)") from None
    except ValueError:
        # check_model refuses protos over 2 GiB in memory; the graph is checked as we convert.
        pass


def default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 1
