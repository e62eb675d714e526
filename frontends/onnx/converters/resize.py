"""Resize (opsets 10-19) and Upsample (7-9): every mode as separable per-axis resampling.

Shapes are static, so for each resized axis the converter computes at compile time, per
output position, the input indices it reads and their weights (nearest, linear, cubic,
antialias, exclude_outside, every coordinate transformation) and whether it is
extrapolated (tf_crop_and_resize). In the IR that is one `resample` op holding those tables
(compiler/ops/sampling.py), run by one kernel (codegen/lower/sampling.py) with no intermediate
per axis; nearest (one tap of weight 1) is a plain gather, exact for any dtype."""

from __future__ import annotations

import math

import numpy as np

from ..registry import converter

_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
          "asymmetric", "tf_crop_and_resize")


def _source(mode: str, out: np.ndarray, scale: float, size: int, out_size: int, roi):
    """Input coordinate of each output position, and which are extrapolated."""
    width = scale * size
    outside = None
    if mode == "align_corners":
        x = np.zeros(out_size) if width == 1 else out * (size - 1) / (width - 1)
    elif mode == "asymmetric":
        x = out / scale
    elif mode == "tf_crop_and_resize":
        start, end = roi
        x = np.full(out_size, (end - start) * (size - 1) / 2) if width == 1 else \
            out * (end - start) * (size - 1) / (width - 1)
        x = x + start * (size - 1)
        outside = (x < 0) | (x > size - 1)
    elif mode == "pytorch_half_pixel":
        x = np.full(out_size, -0.5) if width == 1 else (out + 0.5) / scale - 0.5
    elif mode == "half_pixel":
        x = (out + 0.5) / scale - 0.5
    else:  # half_pixel_symmetric
        offset = size / 2 * (1 - out_size / width)
        x = offset + (out + 0.5) / scale - 0.5
    return x, outside


def _cubic(t: np.ndarray, a: float) -> np.ndarray:
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _weights(kind: str, ratio: float, scale: float, a: float, antialias: bool,
             nearest_mode: str) -> np.ndarray:
    """Weights of the taps around a source coordinate whose distance past the tap on its
    left is `ratio` (in (0, 1])."""
    if kind == "nearest":
        if ratio == 1:
            return np.array([0.0, 1.0])
        pick_right = {"round_prefer_floor": ratio > 0.5, "round_prefer_ceil": ratio >= 0.5,
                      "floor": False, "ceil": True}[nearest_mode]
        return np.array([0.0, 1.0]) if pick_right else np.array([1.0, 0.0])
    if not antialias:
        if kind == "linear":
            return np.array([1 - ratio, ratio])
        return _cubic(np.array([ratio + 1, ratio, 1 - ratio, 2 - ratio]), a)
    scale = min(scale, 1.0)
    reach = 1 if kind == "linear" else 2
    first = int(np.floor(-reach / scale) + 1)
    taps = np.arange(first, 2 - first if kind == "cubic" else first + 2 - 2 * first)
    args = (taps - ratio) * scale
    w = np.clip(1 - np.abs(args), 0, 1) if kind == "linear" else _cubic(args, a)
    return w / w.sum()


def axis_taps(kind: str, mode: str, size: int, out_size: int, scale: float, roi, a: float,
              antialias: bool, nearest_mode: str, exclude_outside: bool):
    """(indices [out, taps] clamped into the input, weights [out, taps], extrapolated [out]
    or None) for resampling one axis of `size` to `out_size`."""
    out = np.arange(out_size, dtype=np.float64)
    x, outside = _source(mode, out, scale, size, out_size, roi)
    left = np.floor(x)
    ratio = np.where(x == left, 1.0, x - left)
    weights = np.stack([_weights(kind, float(r), scale, a, antialias, nearest_mode)
                        for r in ratio]) if out_size else np.zeros((0, 2))
    n = weights.shape[1]
    pad = int(math.ceil(n / 2))
    shifted = x + pad
    base = np.floor(shifted)
    frac = shifted - base
    if n % 2 == 0:
        offset = np.where(frac == 0, -(n // 2), -(n // 2) + 1)
    else:
        offset = np.where(frac <= 0.5, -((n - 1) // 2), -((n - 1) // 2) + 1)
    indices = (base + offset).astype(np.int64)[:, None] + np.arange(n)[None, :] - pad
    if exclude_outside:
        weights = np.where((indices < 0) | (indices >= size), 0.0, weights)
        total = weights.sum(axis=1, keepdims=True)
        weights = weights / np.where(total == 0, 1.0, total)
    return np.clip(indices, 0, size - 1), weights, outside


def _axis_tables(ctx, x, indices, weights, outside, nearest: bool):
    """The three constant tables of one resized axis of the resample op."""
    if nearest:
        picked = indices[np.arange(len(indices)), np.argmax(weights, axis=1)]
        indices, weights = picked[:, None], np.ones((len(picked), 1))
    else:
        live = [t for t in range(weights.shape[1]) if np.any(weights[:, t] != 0)] or [0]
        indices, weights = indices[:, live], weights[:, live]
    dtype = x.dtype.numpy if x.dtype.is_float else np.float32
    mask = np.zeros(len(indices), np.uint8) if outside is None else outside.astype(np.uint8)
    return [ctx.const(np.ascontiguousarray(indices, np.int64)),
            ctx.const(np.ascontiguousarray(weights, dtype)), ctx.const(mask)]


def _single_tap(weights) -> bool:
    return all(np.count_nonzero(row) == 1 and row.max() == 1.0 for row in weights)


def _resize(ctx, x, scales, sizes, roi, kind, mode, a=-0.75, exclude_outside=0,
            extrapolation_value=0.0, nearest_mode="round_prefer_floor", antialias=0,
            axes=None, policy="stretch"):
    rank = x.type.rank
    if kind not in ("nearest", "linear", "cubic"):
        ctx.fail(f"Resize mode '{kind}' is not defined", "use nearest, linear or cubic")
    if mode not in _MODES:
        ctx.fail(f"coordinate_transformation_mode '{mode}' is not defined")
    if kind == "nearest" and nearest_mode not in ("round_prefer_floor", "round_prefer_ceil",
                                                  "floor", "ceil"):
        ctx.fail(f"nearest_mode '{nearest_mode}' is not defined")
    axes = [a_ + rank if a_ < 0 else a_ for a_ in (axes or range(rank))]
    full_scales = [1.0] * rank
    out_sizes = list(x.shape)
    full_roi = [(0.0, 1.0)] * rank
    if roi is not None and len(roi):
        for i, axis in enumerate(axes):
            full_roi[axis] = (float(roi[i]), float(roi[i + len(axes)]))
    if sizes is not None and len(sizes):
        for i, axis in enumerate(axes):
            out_sizes[axis] = int(sizes[i])
            full_scales[axis] = out_sizes[axis] / x.shape[axis] if x.shape[axis] else 1.0
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            scale = pick(full_scales[axis] for axis in axes)
            for axis in axes:
                full_scales[axis] = scale
                out_sizes[axis] = int(scale * x.shape[axis] + 0.5)
    elif scales is not None and len(scales):
        for i, axis in enumerate(axes):
            full_scales[axis] = float(scales[i])
            out_sizes[axis] = int(full_scales[axis] * x.shape[axis])
    else:
        ctx.fail("Resize needs scales or sizes")
    resized = []
    for axis in axes:
        scale, size, out_size = full_scales[axis], x.shape[axis], out_sizes[axis]
        if math.isclose(scale, 1.0) and out_size == size and (
                mode != "tf_crop_and_resize" or full_roi[axis] == (0.0, 1.0)):
            continue
        if size == 0 or out_size == 0:
            ctx.fail(f"Resize of an empty axis ({size} -> {out_size}) is not supported")
        resized.append((axis, axis_taps(kind, mode, size, out_size, scale, full_roi[axis], a,
                                        bool(antialias), nearest_mode, bool(exclude_outside))))
    if not resized:
        return x
    nearest = all(_single_tap(weights) for _, (_, weights, _) in resized)
    if not nearest and not x.dtype.is_float:
        ctx.fail(f"linear and cubic Resize of {x.dtype.name} tensors is not supported",
                 "resize a float tensor, or use mode='nearest'")
    tables = [t for _, (indices, weights, outside) in resized
              for t in _axis_tables(ctx, x, indices, weights, outside, nearest)]
    return ctx.emit("resample", [x] + tables, axes=tuple(axis for axis, _ in resized),
                    fill=float(extrapolation_value), nearest=nearest)


def _array(ctx, value, what):
    return None if value is None else np.asarray(ctx.value_of(value, what)).reshape(-1)


@converter("Upsample", since=7)
def upsample_attribute(ctx, x, mode="nearest", scales=None):
    if scales is None:
        ctx.fail("Upsample has no scales attribute")
    return _resize(ctx, x, list(scales), None, None, mode, "asymmetric", nearest_mode="floor")


@converter("Upsample", since=9)
def upsample(ctx, x, scales, mode="nearest"):
    return _resize(ctx, x, _array(ctx, scales, "Upsample's scales"), None, None, mode,
                   "asymmetric", nearest_mode="floor")


@converter("Resize", since=10)
def resize_10(ctx, x, scales, mode="nearest"):
    return _resize(ctx, x, _array(ctx, scales, "Resize's scales"), None, None, mode,
                   "asymmetric", nearest_mode="floor")


@converter("Resize", since=11)
def resize(ctx, x, roi=None, scales=None, sizes=None, antialias=0, axes=None,
           coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75,
           exclude_outside=0, extrapolation_value=0.0, keep_aspect_ratio_policy="stretch",
           mode="nearest", nearest_mode="round_prefer_floor"):
    """Opsets 11-19 (antialias, axes and keep_aspect_ratio_policy arrive in 18)."""
    return _resize(ctx, x, _array(ctx, scales, "Resize's scales"),
                   _array(ctx, sizes, "Resize's sizes"), _array(ctx, roi, "Resize's roi"),
                   mode, coordinate_transformation_mode, float(cubic_coeff_a),
                   exclude_outside, float(extrapolation_value), nearest_mode, antialias,
                   list(axes) if axes is not None else None, keep_aspect_ratio_policy)
