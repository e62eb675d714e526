"""IR ops whose output size depends on the data: nonzero, nms (NonMaxSuppression) and
unique_values / unique_indices / unique_counts (Unique; unique_inverse has a static size).

Their output type is an upper bound: one dim (bounded_axis) is the most the op can produce.
At run time the kernel writes the result compactly (row-major with the actual dims) at the
start of the buffer and records the actual extent of that dim; the references below return
the same layout, zero-padded. Only graph outputs may be bounded (codegen checks)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import DType
from ..ir import TensorType
from .registry import register

#: IR op -> the axis of its output whose extent is data-dependent
BOUNDED_AXIS: dict[str, int] = {"nonzero": 1, "nms": 0, "unique_indices": 0,
                                "unique_counts": 0}


def bounded_axis(op: str, attrs: dict[str, Any]) -> int | None:
    """The data-dependent axis of op's output, or None for an op of static output size."""
    if op == "loop_result":   # a Loop's scan output: as many rows as iterations ran
        return 0 if attrs.get("bounded") else None
    if op == "unique_values":
        return 0 if attrs.get("axis") is None else attrs["axis"]
    return BOUNDED_AXIS.get(op)


def _padded(compact: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(int(np.prod(shape)), np.int64)
    out[:compact.size] = compact.reshape(-1)
    return out.reshape(shape)


@register("nonzero", "movement",
          lambda types, attrs: [TensorType(DType.int64,
                                           (max(len(types[0].shape), 1), types[0].numel))])
def nonzero(x):
    """Indices of the non-zero elements, [rank, count] in row-major order (bound: numel)."""
    found = np.array(np.nonzero(x.reshape(x.shape or (1,))), np.int64)
    return _padded(found, (max(x.ndim, 1), x.size))


def _nms_type(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return [TensorType(DType.int64, (attrs["bound"], 3))]


def _suppress(a: np.ndarray, b: np.ndarray, center: int, threshold: float) -> bool:
    if center:
        a = np.array([a[1] - a[3] / 2, a[0] - a[2] / 2, a[1] + a[3] / 2, a[0] + a[2] / 2])
        b = np.array([b[1] - b[3] / 2, b[0] - b[2] / 2, b[1] + b[3] / 2, b[0] + b[2] / 2])
    ay0, ay1 = sorted((a[0], a[2]))
    ax0, ax1 = sorted((a[1], a[3]))
    by0, by1 = sorted((b[0], b[2]))
    bx0, bx1 = sorted((b[1], b[3]))
    iw, ih = min(ax1, bx1) - max(ax0, bx0), min(ay1, by1) - max(ay0, by0)
    area_a, area_b = (ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0)
    if iw <= 0 or ih <= 0 or area_a <= 0 or area_b <= 0:
        return False
    inter = iw * ih
    union = area_a + area_b - inter
    return bool(union > 0 and inter / union > threshold)


@register("nms", "movement", _nms_type)
def nms(boxes, scores, max_output, iou_threshold, score_threshold, *, center_point_box=0,
        bound):
    """Greedy non-max suppression per (batch, class): rows [batch, class, box] (bound rows)."""
    return _padded(nms_rows(boxes, scores, max_output, iou_threshold, score_threshold,
                            center_point_box), (bound, 3))


def nms_rows(boxes, scores, max_output, iou_threshold, score_threshold,
             center_point_box: int = 0) -> np.ndarray:
    """NonMaxSuppression's selected [batch, class, box] rows, exactly (no bound)."""
    limit = int(np.asarray(max_output).reshape(-1)[0]) if np.size(max_output) else 0
    iou, least = float(np.asarray(iou_threshold).reshape(-1)[0]), \
        float(np.asarray(score_threshold).reshape(-1)[0])
    rows = []
    for b in range(scores.shape[0]):
        for c in range(scores.shape[1]):
            s = scores[b, c]
            order = [int(i) for i in np.argsort(-s, kind="stable") if s[i] > least]
            kept: list[int] = []
            for i in order:
                if len(kept) >= limit:
                    break
                if not any(_suppress(boxes[b, k], boxes[b, i], center_point_box, iou)
                           for k in kept):
                    kept.append(i)
            rows += [(b, c, k) for k in kept]
    return np.array(rows, np.int64).reshape(-1, 3)


def _unique(x, axis, sorted):
    """np.unique's four results, in first-occurrence order when not `sorted`."""
    values, first, inverse, counts = np.unique(x, return_index=True, return_inverse=True,
                                               return_counts=True, axis=axis)
    inverse = inverse.reshape(-1)
    if not sorted:
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        values = np.take(values, order, axis=0 if axis is None else axis)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    return values, first, inverse, counts


def _unique_type(which: str):
    def infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
        x, axis = types[0], attrs.get("axis")
        length = x.numel if axis is None else x.shape[axis]
        if which == "values":
            return [TensorType(x.dtype, (x.numel,) if axis is None else x.shape)]
        return [TensorType(DType.int64, (length,))]
    return infer


@register("unique_values", "movement", _unique_type("values"))
def unique_values(x, *, axis=None, sorted=1):
    """Unique's Y: the distinct elements (or slices along `axis`); bound: all of them."""
    values = _unique(x, axis, sorted)[0]
    shape = (x.size,) if axis is None else x.shape
    if axis is None:
        return _padded(values, shape)
    out = np.zeros(int(np.prod(shape)), values.dtype)
    out[:values.size] = values.reshape(-1)
    return out.reshape(shape)


@register("unique_indices", "movement", _unique_type("indices"))
def unique_indices(x, *, axis=None, sorted=1):
    """Unique's indices: where each distinct element first occurs."""
    return _padded(_unique(x, axis, sorted)[1], (x.size if axis is None else x.shape[axis],))


@register("unique_inverse", "movement", _unique_type("inverse"))
def unique_inverse(x, *, axis=None, sorted=1):
    """Unique's inverse_indices: each element's position in Y (a static size)."""
    return _unique(x, axis, sorted)[2].astype(np.int64)


@register("unique_counts", "movement", _unique_type("counts"))
def unique_counts(x, *, axis=None, sorted=1):
    """Unique's counts: how often each distinct element occurs."""
    return _padded(_unique(x, axis, sorted)[3], (x.size if axis is None else x.shape[axis],))
