"""Inputs pinned to a value at compile time (`consts={"sr": 16000}`, `--const sr=16000`).

A pinned input becomes a constant of the graph: it leaves the artifact's inputs, and what
depends on it folds (e.g. an If on the sample rate keeps only the branch taken).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import onnx

from ...compiler.dtypes import DType
from ...compiler.errors import ShapeError, UnpinnedDimError


def pinned_inputs(model: onnx.ModelProto, consts: Mapping[str, Any] | None
                  ) -> dict[str, np.ndarray]:
    """Each pinned input's value as an array of the input's declared dtype and rank."""
    if not consts:
        return {}
    initializers = {t.name for t in model.graph.initializer}
    declared = {i.name: i for i in model.graph.input if i.name not in initializers}
    unknown = sorted(set(consts) - set(declared))
    if unknown:
        raise UnpinnedDimError(f"--const names no input of the model: {', '.join(unknown)} "
                               f"(inputs: {', '.join(sorted(declared))})")
    pinned: dict[str, np.ndarray] = {}
    for name, value in consts.items():
        tensor = declared[name].type.tensor_type
        dtype = DType.from_onnx(tensor.elem_type).numpy
        try:
            array = np.asarray(value).astype(dtype)
        except (TypeError, ValueError) as exc:
            raise ShapeError(f"--const {name}: cannot read {value!r} as {dtype}: {exc}") from None
        dims = list(tensor.shape.dim) if tensor.HasField("shape") else None
        if dims is not None:
            if array.ndim != len(dims) and array.size == 1:
                array = array.reshape((1,) * len(dims))
            if array.ndim != len(dims):
                raise ShapeError(f"--const {name}: the model declares rank {len(dims)}, "
                                 f"but the value has shape {list(array.shape)}")
            for axis, (size, dim) in enumerate(zip(array.shape, dims)):
                if dim.HasField("dim_value") and 0 <= dim.dim_value != size:
                    raise ShapeError(f"--const {name}: dim {axis} is {dim.dim_value} in the "
                                     f"model, not {size}")
        pinned[name] = array
    return pinned


def parse_const(text: str) -> tuple[str, Any]:
    """`NAME=VALUE` or `NAME=V1,V2,...` (a 1-d value) from the command line."""
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise ShapeError(f"--const {text!r}: write NAME=VALUE, e.g. --const sr=16000")
    items = [float(v) if any(c in v for c in ".eE") or v in ("nan", "inf", "-inf") else int(v)
             for v in value.split(",")] if _numeric(value) else None
    if items is None:
        raise ShapeError(f"--const {text!r}: {value!r} is not a number or a comma-separated "
                         f"list of numbers")
    return name, items[0] if len(items) == 1 else items


def _numeric(value: str) -> bool:
    try:
        for v in value.split(","):
            float(v)
    except ValueError:
        return False
    return True
