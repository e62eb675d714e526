"""Data movement and shape ops. Shape-kind ops are always folded at compile time."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import DType
from ..errors import ShapeError
from ..ir import TensorType
from .registry import register


def _reshape_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    shape = tuple(attrs["shape"])
    if int(np.prod(shape, dtype=np.int64)) != types[0].numel:
        raise ShapeError(f"cannot reshape {types[0].shape} to {shape}")
    return [TensorType(types[0].dtype, shape)]


@register("reshape", "movement", _reshape_type)
def reshape(x, *, shape):
    """Same elements, row-major, new static `shape`."""
    return x.reshape(shape)


def _transpose_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return [TensorType(types[0].dtype, tuple(types[0].shape[p] for p in attrs["perm"]))]


@register("transpose", "movement", _transpose_type)
def transpose(x, *, perm):
    return np.transpose(x, perm)


def _concat_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    axis = attrs["axis"]
    first = types[0].shape
    for t in types[1:]:
        if t.rank != len(first) or any(a != b for i, (a, b) in enumerate(zip(first, t.shape))
                                       if i != axis):
            raise ShapeError(f"concat along axis {axis} of mismatched shapes "
                             f"{[t.shape for t in types]}")
    total = sum(t.shape[axis] for t in types)
    return [TensorType(types[0].dtype, first[:axis] + (total,) + first[axis + 1:])]


@register("concat", "movement", _concat_type, layout_rule="carried_axis")
def concat(*xs, axis):
    return np.concatenate(xs, axis=axis)


def _slice_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    shape = tuple(len(range(s, e, st)) for s, e, st in
                  zip(attrs["starts"], attrs["ends"], attrs["steps"]))
    return [TensorType(types[0].dtype, shape)]


@register("slice", "movement", _slice_type)
def slice_(x, *, starts, ends, steps):
    """Strided slice with one (start, end, step) per axis, already clamped like Python's
    `range` (an end of -1 with a negative step means 'through index 0')."""
    index = tuple(slice(s, None if e < 0 else e, st) for s, e, st in zip(starts, ends, steps))
    return x[index]


def _gather_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    data, indices = types
    axis = attrs["axis"]
    shape = data.shape[:axis] + indices.shape + data.shape[axis + 1:]
    return [TensorType(data.dtype, shape)]


@register("gather", "movement", _gather_type)
def gather(data, indices, *, axis):
    """Take slices along `axis`; negative indices count from the end."""
    idx = np.where(indices < 0, indices + data.shape[axis], indices)
    return np.take(data, idx, axis=axis)


def _expand_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    shape = tuple(np.broadcast_shapes(types[0].shape, tuple(attrs["shape"])))
    return [TensorType(types[0].dtype, shape)]


@register("expand", "movement", _expand_type)
def expand(x, *, shape):
    return np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(shape))).copy()


def _pad_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x = types[0]
    pads = attrs["pads"]
    rank = x.rank
    shape = tuple(d + pads[i] + pads[i + rank] for i, d in enumerate(x.shape))
    if any(d < 0 for d in shape):
        raise ShapeError(f"pads {pads} make a negative dim from {x.shape}")
    return [TensorType(x.dtype, shape)]


@register("pad", "movement", _pad_type)
def pad(x, *, pads, mode="constant", value=0.0):
    """ONNX pads layout: all begins, then all ends. Negative pads crop."""
    rank = x.ndim
    crop = tuple(slice(max(0, -pads[i]), x.shape[i] - max(0, -pads[i + rank]))
                 for i in range(rank))
    x = x[crop]
    widths = [(max(0, pads[i]), max(0, pads[i + rank])) for i in range(rank)]
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=value)
    return np.pad(x, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])


def _shape_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    rank = types[0].rank
    start, end = attrs.get("start", 0), attrs.get("end", rank)
    return [TensorType(DType.int64, (len(range(rank)[start:end]),))]


@register("shape", "shape", _shape_type)
def shape(x, *, start=0, end=None):
    """The (static) shape of x as int64; always folded to a constant."""
    return np.array(x.shape[start:end], dtype=np.int64)
