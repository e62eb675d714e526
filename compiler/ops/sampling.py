"""grid_sample: read an N-D input at the (normalized) positions of a grid, with nearest,
linear or cubic interpolation and zeros/border/reflection padding (ONNX GridSample)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..ir import TensorType
from .registry import register

CUBIC_A = -0.75


def _grid_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x, grid = types
    return [TensorType(x.dtype, x.shape[:2] + grid.shape[1:-1])]


def borders(size: int, align_corners: bool) -> tuple[float, float]:
    return (0.0, size - 1.0) if align_corners else (-0.5, size - 0.5)


def reflect(v, low: float, high: float, xp=np):
    """Fold v into [low, high] by reflecting at the borders (as often as needed)."""
    span = high - low
    below, above = low - v, v - high
    dx = xp.where(v < low, below, above)
    n = xp.floor(dx / span) if span else dx * 0
    r = dx - n * span
    even = (n % 2) == 0
    folded_below = xp.where(even, low + r, high - r)
    folded_above = xp.where(even, high - r, low + r)
    return xp.where(v < low, folded_below, xp.where(v > high, folded_above, v))


def cubic_weights(f):
    a = CUBIC_A
    return [((a * (f + 1) - 5 * a) * (f + 1) + 8 * a) * (f + 1) - 4 * a,
            ((a + 2) * f - (a + 3)) * f * f + 1,
            ((a + 2) * (1 - f) - (a + 3)) * (1 - f) * (1 - f) + 1,
            ((a * (2 - f) - 5 * a) * (2 - f) + 8 * a) * (2 - f) - 4 * a]


@register("grid_sample", "movement", _grid_type)
def grid_sample(x, grid, *, mode="linear", padding_mode="zeros", align_corners=0):
    """y[n, c, *p] = interpolation of x[n, c] at grid[n, *p] (x coordinate first)."""
    n_batch, channels = x.shape[:2]
    sizes = x.shape[2:]
    rank = len(sizes)
    out = np.zeros(x.shape[:2] + grid.shape[1:-1], dtype=np.float64)
    for n in range(n_batch):
        g = grid[n].astype(np.float32)
        taps_per_dim = []
        for i, size in enumerate(sizes):
            raw = g[..., rank - 1 - i]
            v = (raw + 1) / 2 * (size - 1) if align_corners else ((raw + 1) * size - 1) / 2
            if mode == "nearest":
                v = np.rint(v)
            low, high = borders(size, bool(align_corners))
            if padding_mode == "border":
                v = np.where((v < low) | (v > high), np.clip(v, 0, size - 1), v)
            elif padding_mode == "reflection":
                v = reflect(v, low, high)
            if mode == "nearest":
                taps = [(np.trunc(v).astype(np.int64), np.ones_like(v))]
            else:
                base = np.floor(v)
                f = v - base
                weights = [1 - f, f] if mode == "linear" else cubic_weights(f)
                first = 0 if mode == "linear" else -1
                taps = [((base + first + t).astype(np.int64), w)
                        for t, w in enumerate(weights)]
            taps_per_dim.append((taps, size, low, high))
        for combo in itertools.product(*[t[0] for t in taps_per_dim]):
            weight = np.ones(grid.shape[1:-1])
            index, valid = [], np.ones(grid.shape[1:-1], dtype=bool)
            for (idx, w), (_, size, low, high) in zip(combo, taps_per_dim):
                weight = weight * w
                if padding_mode == "zeros":
                    valid &= (idx >= 0) & (idx < size)
                    idx = np.clip(idx, 0, size - 1)
                elif padding_mode == "border":
                    idx = np.clip(idx, 0, size - 1)
                else:
                    idx = np.trunc(reflect(idx.astype(np.float64), low, high)).astype(np.int64)
                    idx = np.clip(idx, 0, size - 1)
                index.append(idx)
            picked = x[n][(slice(None),) + tuple(index)]          # [C, *out]
            out[n] += np.where(valid, picked * weight, 0.0)
    return out.astype(x.dtype)


def _resample_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    shape = list(types[0].shape)
    for i, axis in enumerate(attrs["axes"]):
        shape[axis] = types[1 + 3 * i].shape[0]
    return [TensorType(types[0].dtype, tuple(shape))]


@register("resample", "movement", _resample_type, pattern="opaque")
def resample(x, *tables, axes, fill, nearest):
    """Separable resampling (ONNX Resize): along axis axes[i], output position o reads the
    input positions tables[3i][o, t] with weights tables[3i + 1][o, t], summed over the taps
    t (nearest: the one tap, unweighted, any dtype); where tables[3i + 2][o] is nonzero on
    any axis the output is `fill` (tf_crop_and_resize extrapolation)."""
    y = x
    outside = np.zeros((1,) * x.ndim, bool)
    for i, axis in enumerate(axes):
        indices, weights, out = tables[3 * i:3 * i + 3]
        taken = np.take(y, indices, axis=axis)          # [..., O, T, ...]
        if nearest:
            y = np.take(taken, 0, axis=axis + 1)
        else:
            shape = [1] * y.ndim
            shape[axis:axis + 1] = list(weights.shape)
            y = (taken * weights.reshape(shape).astype(y.dtype)).sum(axis=axis + 1,
                                                                    dtype=y.dtype)
        mask_shape = [1] * x.ndim
        mask_shape[axis] = len(out)
        outside = outside | (np.asarray(out).reshape(mask_shape) != 0)
    return np.where(outside, np.asarray(fill, x.dtype), y).astype(x.dtype)
