"""Ops that reinterpret a tensor's bytes: `bitcast` (ONNX BitCast) between same-size dtypes."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir import TensorType
from .registry import register


def _bitcast_type(types: list[TensorType], attrs) -> list[TensorType]:
    source, target = types[0].dtype, attrs["to"]
    if source.itemsize != target.itemsize:
        raise ShapeError(f"bitcast from {source.name} ({source.itemsize} bytes) to "
                         f"{target.name} ({target.itemsize} bytes) changes the element size")
    return [TensorType(target, types[0].shape)]


@register("bitcast", "movement", _bitcast_type)
def bitcast(x, *, to):
    """The same bytes read as dtype `to` (bool reads as 0/1 bytes)."""
    array = np.ascontiguousarray(x)
    if to.numpy == np.bool_:
        return array.view(np.uint8) != 0
    return array.view(to.numpy)
