"""NonMaxSuppression: a result of data-dependent size, declared at its upper bound (see
compiler/ops/data_dependent.py); NonZero's run-time case lives with its constant case in
tensor_extra.py."""

from __future__ import annotations

import numpy as np

from ....compiler.ops.data_dependent import nms_rows
from ..registry import converter


def _optional(ctx, value, default, dtype):
    return ctx.const(np.array([default], dtype)) if value is None else value


@converter("NonMaxSuppression", since=10)
def non_max_suppression(ctx, boxes, scores, max_output_boxes_per_class=None,
                        iou_threshold=None, score_threshold=None, center_point_box=0):
    if boxes.type.rank != 3 or scores.type.rank != 3 or boxes.shape[2] != 4 \
            or boxes.shape[:2] != (scores.shape[0], scores.shape[2]):
        ctx.fail(f"boxes {boxes.shape} and scores {scores.shape} must be [batches, boxes, 4] "
                 "and [batches, classes, boxes]", "check the model's input shapes")
    if center_point_box not in (0, 1):
        ctx.fail(f"center_point_box must be 0 or 1, got {center_point_box}")
    batches, classes, n = scores.shape
    float_ = scores.dtype.numpy
    limit = _optional(ctx, max_output_boxes_per_class, 0, np.int64)
    iou = _optional(ctx, iou_threshold, 0.0, float_)
    least = _optional(ctx, score_threshold, -np.finfo(float_).max, float_)
    inputs = [boxes, scores, limit, iou, least]
    if all(v.is_constant for v in inputs):   # known now: fold to the exact result
        return ctx.const(nms_rows(*(v.data for v in inputs), int(center_point_box)))
    per_class = n
    if limit.is_constant:
        per_class = min(max(int(np.asarray(limit.data).reshape(-1)[0]), 0), n)
    return ctx.emit("nms", inputs,
                    center_point_box=int(center_point_box), bound=batches * classes * per_class)
