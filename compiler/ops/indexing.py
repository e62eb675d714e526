"""Indexed reads and writes along an axis, scans and selection: gather_elements,
scatter_elements, scatter_nd, cumulative sum/product and top-k (values or indices).
Axes are normalized (non-negative); negative indices count from the end of their axis."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import DType
from ..ir import TensorType
from .registry import register, same_as_first


def _wrap(indices: np.ndarray, dim: int) -> np.ndarray:
    return np.where(indices < 0, indices + dim, indices).astype(np.int64)


def _indices_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return [TensorType(types[0].dtype, types[1].shape)]


@register("gather_elements", "movement", _indices_type)
def gather_elements(data, indices, *, axis):
    """out[i] = data[i with its `axis` coordinate replaced by indices[i]]."""
    return np.take_along_axis(data, _wrap(indices, data.shape[axis]), axis=axis)


_COMBINE = {"none": lambda old, new: new, "add": np.add, "mul": np.multiply,
            "max": np.maximum, "min": np.minimum}


@register("scatter_elements", "movement", same_as_first)
def scatter_elements(data, indices, updates, *, axis, reduction="none"):
    """A copy of data with updates written (or combined) where indices point along `axis`,
    in the order of the updates."""
    out = data.copy()
    idx = _wrap(indices, data.shape[axis])
    for pos in np.ndindex(*indices.shape):
        target = list(pos)
        target[axis] = idx[pos]
        target = tuple(target)
        out[target] = _COMBINE[reduction](out[target], updates[pos])
    return out


@register("scatter_nd", "movement", same_as_first)
def scatter_nd(data, indices, updates, *, reduction="none"):
    """A copy of data with updates[i] written (or combined) at the slice data[indices[i]]."""
    out = data.copy()
    depth = indices.shape[-1]
    for pos in np.ndindex(*indices.shape[:-1]):
        where = tuple(int(v) + (d if v < 0 else 0)
                      for v, d in zip(indices[pos], data.shape[:depth]))
        out[where] = _COMBINE[reduction](out[where], updates[pos])
    return out


def _scan(fn, x, axis, exclusive, reverse):
    if reverse:
        x = np.flip(x, axis)
    y = fn(x, axis=axis, dtype=x.dtype)
    if exclusive:
        identity = 1 if fn is np.cumprod else 0
        y = np.concatenate([np.full_like(np.take(y, [0], axis=axis), identity),
                            np.delete(y, -1, axis=axis)], axis=axis) if x.shape[axis] else y
    return np.flip(y, axis) if reverse else y


@register("cumsum", "movement", same_as_first)
def cumsum(x, *, axis, exclusive=0, reverse=0):
    """Running sum along `axis` (exclusive: the sum before each element; reverse: from the
    end)."""
    return _scan(np.cumsum, x, axis, exclusive, reverse)


@register("cumprod", "movement", same_as_first)
def cumprod(x, *, axis, exclusive=0, reverse=0):
    """Running product along `axis`."""
    return _scan(np.cumprod, x, axis, exclusive, reverse)


def _topk_type(types: list[TensorType], attrs: dict[str, Any], dtype=None):
    x = types[0]
    shape = list(x.shape)
    shape[attrs["axis"]] = attrs["k"]
    return [TensorType(dtype or x.dtype, tuple(shape))]


def _topk_order(x, axis, k, largest):
    # stable: equal values keep the smaller index first
    keys = -x if largest else x
    if x.dtype.kind == "u" and largest:
        keys = x.max(initial=0) - x
    order = np.argsort(keys, axis=axis, kind="stable")
    return np.take(order, np.arange(k), axis=axis)


@register("topk_values", "movement", _topk_type)
def topk_values(x, *, axis, k, largest=1):
    """The k largest (or smallest) elements along `axis`, in order; ties by index."""
    return np.take_along_axis(x, _topk_order(x, axis, k, largest), axis=axis)


@register("topk_indices", "movement",
          lambda types, attrs: _topk_type(types, attrs, DType.int64))
def topk_indices(x, *, axis, k, largest=1):
    """Where the elements topk_values picks come from, as int64 along `axis`."""
    return _topk_order(x, axis, k, largest).astype(np.int64)
