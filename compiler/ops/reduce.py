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


def _reducer(name: str, fn):
    @register(name, "reduce", _reduce_type)
    def reference(x, *, axes, keepdims):
        return fn(x, axis=tuple(axes), keepdims=bool(keepdims))

    reference.__doc__ = f"{fn.__name__} over `axes`"
    return reference


reduce_sum = _reducer("reduce_sum", np.sum)
reduce_mean = _reducer("reduce_mean", np.mean)
reduce_max = _reducer("reduce_max", np.max)
reduce_min = _reducer("reduce_min", np.min)
reduce_prod = _reducer("reduce_prod", np.prod)
