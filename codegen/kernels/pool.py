"""The pooling kernels (max_pool2d, avg_pool2d): the layout the pool runs in, then whether
its channels and window suit vectors, pick one of three loop builders (lower/pool.py)."""

from __future__ import annotations

from ..lower.pool import (is_nhwc, lower_pool_nchw, lower_pool_nhwc_loops,
                          lower_pool_nhwc_vector, nhwc_vector_rejects)
from ..schedules import NoSchedule
from .registry import Kernel, register

POOL_OPS = ("max_pool2d", "avg_pool2d")


register(Kernel(
    name="pool_nhwc_vector", ops=POOL_OPS, stage="group", layout="NHWC",
    applies_to="float32 NHWC pools of at least one vector of channels, windows up to 64 "
               "taps (unrolled)",
    schedule=NoSchedule, min_vector_bits=256,
    rejects=lambda g, t: nhwc_vector_rejects(g, t.lanes), default=lambda g, t: NoSchedule(),
    lower=lambda ctx, g, s: lower_pool_nhwc_vector(ctx, g)))

register(Kernel(
    name="pool_nhwc_loops", ops=POOL_OPS, stage="group", layout="NHWC",
    applies_to="any NHWC pool (portable loops, contiguous over channels)",
    schedule=NoSchedule,
    rejects=lambda g, t: None if is_nhwc(g) else "the pool is not in NHWC",
    default=lambda g, t: NoSchedule(), lower=lambda ctx, g, s: lower_pool_nhwc_loops(ctx, g)))

register(Kernel(
    name="pool_nchw_loops", ops=POOL_OPS, stage="group", layout="NCHW",
    applies_to="any NCHW pool (portable loops, a task per plane)",
    schedule=NoSchedule,
    rejects=lambda g, t: "the pool is in NHWC" if is_nhwc(g) else None,
    default=lambda g, t: NoSchedule(), lower=lambda ctx, g, s: lower_pool_nchw(ctx, g)))
