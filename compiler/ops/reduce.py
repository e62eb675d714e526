"""Reductions over a set of axes (normalized non-negative, sorted), with keepdims."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import TensorType
from .registry import register


def _reduce_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x = types[0]
    axes = set(attrs["axes"])
    if attrs["keepdims"]:
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    else:
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return [TensorType(x.dtype, shape)]


def _lowest(dtype: np.dtype) -> Any:
    """ReduceMax's value over an empty set (ONNX): minus infinity, or the type's minimum."""
    if np.issubdtype(dtype, np.floating):
        return -np.inf
    return False if dtype == np.bool_ else np.iinfo(dtype).min


def _highest(dtype: np.dtype) -> Any:
    """ReduceMin's value over an empty set (ONNX): infinity, or the type's maximum."""
    if np.issubdtype(dtype, np.floating):
        return np.inf
    return True if dtype == np.bool_ else np.iinfo(dtype).max


def _mean(x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """The mean, 0 over an empty set (ONNX leaves it undefined; ONNX Runtime and Kiln's
    kernels give 0)."""
    if x.size == 0:
        return np.sum(x, axis=axis, keepdims=keepdims)
    return np.mean(x, axis=axis, keepdims=keepdims)


def _reducer(name: str, fn, empty=None):
    """Register `fn` over `axes`; `empty(dtype)` is its value over an empty set where numpy
    has none (max, min)."""
    @register(name, "reduce", _reduce_type)
    def reference(x, *, axes, keepdims):
        if empty is not None and x.size == 0:
            return fn(x, axis=tuple(axes), keepdims=bool(keepdims), initial=empty(x.dtype))
        return fn(x, axis=tuple(axes), keepdims=bool(keepdims))

    reference.__doc__ = f"{fn.__name__} over `axes`"
    return reference


reduce_sum = _reducer("reduce_sum", np.sum)
reduce_mean = _reducer("reduce_mean", _mean)
reduce_max = _reducer("reduce_max", np.max, _lowest)
reduce_min = _reducer("reduce_min", np.min, _highest)
reduce_prod = _reducer("reduce_prod", np.prod)
