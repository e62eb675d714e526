"""MaxPool's Indices output and MaxUnpool, over 1-D, 2-D and 3-D windows.

Indices: every window's elements are gathered through a compile-time table of input
positions ([outputs, window]); the first position (in window order, which is also the
smallest flat position) whose value equals the window's max is its index, flattened over the
whole input tensor (row-major, or column-major over the spatial dims with storage_order=1).
MaxUnpool: a scatter of the values to those flat positions in a zero tensor.
"""

from __future__ import annotations

import itertools

import numpy as np

from ....compiler.dtypes import DType
from ..registry import converter
from .common import ints, reshape, window_pads

#: The most (output position, window element) pairs an Indices table may hold.
MAX_INDEX_TABLE = 1 << 24


def max_pool_indices(ctx, x, y, kernel_shape, strides, pads, dilations, auto_pad,
                     storage_order: int):
    """The int64 Indices output of MaxPool(x) whose values output is `y`."""
    dims = x.type.rank - 2
    spatial = x.shape[2:]
    kernel = ints(kernel_shape)
    strides = ints(strides) if strides else (1,) * dims
    dilations = ints(dilations) if dilations else (1,) * dims
    begins = [b for b, _ in window_pads(ctx, auto_pad, spatial, kernel, strides, dilations,
                                        pads)]
    outs = y.shape[2:]
    count, window = int(np.prod(outs)), int(np.prod(kernel))
    if count * window > MAX_INDEX_TABLE:
        ctx.fail(f"MaxPool's Indices need a {count}x{window} position table, over Kiln's "
                 f"limit of {MAX_INDEX_TABLE}")
    gather = np.zeros((count, window), dtype=np.int64)
    valid = np.zeros((count, window), dtype=bool)
    flat = np.zeros((count, window), dtype=np.int64)
    order = spatial if not storage_order else spatial[::-1]
    for o, out_pos in enumerate(itertools.product(*[range(n) for n in outs])):
        for k, offset in enumerate(itertools.product(*[range(n) for n in kernel])):
            pos = [p * s - b + q * d for p, s, b, q, d in
                   zip(out_pos, strides, begins, offset, dilations)]
            if all(0 <= p < n for p, n in zip(pos, spatial)):
                valid[o, k] = True
                gather[o, k] = np.ravel_multi_index(pos, spatial)
                flat[o, k] = np.ravel_multi_index(pos if not storage_order else pos[::-1],
                                                  order)
    n, c = x.shape[:2]
    plane = int(np.prod(spatial))
    rows = reshape(ctx, x, (n, c, plane))
    windows = ctx.emit("gather", [rows, ctx.const(gather)], axis=2)   # [n, c, count, window]
    peak = reshape(ctx, y, (n, c, count, 1))
    hit = ctx.emit("and", [ctx.emit("equal", [windows, peak]), ctx.const(valid)])
    far = np.iinfo(np.int64).max
    chosen = ctx.emit("reduce_min", [ctx.emit("where", [hit, ctx.const(flat),
                                                         ctx.const(np.int64(far))])],
                      axes=(3,), keepdims=False)
    base = (np.arange(n * c, dtype=np.int64) * plane).reshape(n, c, 1)
    return reshape(ctx, ctx.emit("add", [chosen, ctx.const(base)]), y.shape)


@converter("MaxUnpool", since=9)
def max_unpool(ctx, x, indices, output_shape=None, kernel_shape=None, pads=None,
               strides=None):
    """Values x placed at their flat `indices` in a zero tensor of the unpooled shape."""
    if kernel_shape is None:
        ctx.fail("MaxUnpool needs kernel_shape")
    dims = x.type.rank - 2
    kernel = ints(kernel_shape)
    strides = ints(strides) if strides else (1,) * dims
    pads = ints(pads) if pads else (0,) * (2 * dims)
    if len(kernel) != dims or len(strides) != dims or len(pads) != 2 * dims:
        ctx.fail("MaxUnpool's kernel_shape, strides and pads do not fit the input's rank")
    if indices.shape != x.shape:
        ctx.fail(f"MaxUnpool's indices {list(indices.shape)} differ from X's shape "
                 f"{list(x.shape)}")
    shape = x.shape[:2] + tuple((i - 1) * s + k - pads[a] - pads[a + dims] for a, (i, s, k)
                                in enumerate(zip(x.shape[2:], strides, kernel)))
    total = int(np.prod(shape))
    zeros = ctx.const(np.zeros((total,), dtype=x.dtype.numpy))
    where = reshape(ctx, ctx.emit("cast", [indices], to=DType.int64), (x.type.numel,))
    values = reshape(ctx, x, (x.type.numel,))
    placed = ctx.emit("scatter_elements", [zeros, where, values], axis=0, reduction="none")
    placed = reshape(ctx, placed, shape)
    if output_shape is None:
        return placed
    # indices address the inferred shape; a given output_shape pads (or crops) its end
    wanted = ints(ctx.value_of(output_shape, "MaxUnpool's output_shape"))
    if len(wanted) != x.type.rank or tuple(wanted[:2]) != tuple(shape[:2]):
        ctx.fail(f"MaxUnpool's output_shape {list(wanted)} does not fit X {list(x.shape)}")
    kept = tuple(min(a, b) for a, b in zip(shape, wanted))
    if kept != shape:
        placed = ctx.emit("slice", [placed], starts=(0,) * len(kept), ends=kept,
                          steps=(1,) * len(kept))
    if kept != wanted:
        grow = tuple(w - k for w, k in zip(wanted, kept))
        placed = ctx.emit("pad", [placed], pads=(0,) * len(kept) + grow, mode="constant",
                          value=0.0)
    return placed
