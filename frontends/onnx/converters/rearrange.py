"""Ops that move elements to places computed from run-time or compile-time positions:
ReverseSequence and TensorScatter (gather_elements / where over index arithmetic built in
the graph, so their lengths and write positions may be run-time inputs) and Col2Im (a
scatter-add of every column entry to its image position, the positions fixed at compile time).
"""

from __future__ import annotations

import itertools

import numpy as np

from ....compiler.dtypes import DType
from ..registry import converter
from .common import axis_of, ints, reshape


def _along(ctx, values: np.ndarray, rank: int, axis: int):
    """A 1-D int64 constant shaped to broadcast along `axis` of a rank-`rank` tensor."""
    shape = [1] * rank
    shape[axis] = len(values)
    return ctx.const(np.asarray(values, dtype=np.int64).reshape(shape))


def _broadcast_to(ctx, value, shape):
    if value.shape == tuple(shape):
        return value
    return ctx.emit("expand", [value], shape=tuple(shape))


@converter("ReverseSequence", since=10)
def reverse_sequence(ctx, x, sequence_lens, batch_axis=1, time_axis=0):
    """y[b, t] = x[b, len[b] - 1 - t] for t < len[b], else x[b, t]."""
    rank = x.type.rank
    if rank < 2:
        ctx.fail(f"ReverseSequence needs rank >= 2, got shape {list(x.shape)}")
    batch_axis, time_axis = axis_of(ctx, batch_axis, rank), axis_of(ctx, time_axis, rank)
    if {batch_axis, time_axis} != {0, 1}:
        ctx.fail("ReverseSequence's batch_axis and time_axis must be 0 and 1")
    if sequence_lens.shape != (x.shape[batch_axis],):
        ctx.fail(f"sequence_lens has shape {list(sequence_lens.shape)}, expected "
                 f"[{x.shape[batch_axis]}]")
    time = _along(ctx, np.arange(x.shape[time_axis]), rank, time_axis)
    lens = ctx.emit("cast", [sequence_lens], to=DType.int64)
    shape = [1] * rank
    shape[batch_axis] = x.shape[batch_axis]
    lens = reshape(ctx, lens, shape)
    flipped = ctx.emit("sub", [ctx.emit("sub", [lens, ctx.const(np.int64(1))]), time])
    index = ctx.emit("where", [ctx.emit("less", [time, lens]), flipped, time])
    return ctx.emit("gather_elements", [x, _broadcast_to(ctx, index, x.shape)],
                    axis=time_axis)


@converter("TensorScatter", since=24)
def tensor_scatter(ctx, past_cache, update, write_indices=None, axis=-2, mode="linear"):
    """present[b, ..., p, ...] = update[b, ..., p - w[b], ...] where that is in range
    (modulo the cache length in circular mode), else past_cache."""
    rank = past_cache.type.rank
    axis = axis_of(ctx, axis, rank)
    if axis == 0:
        ctx.fail("TensorScatter's axis must not be the batch axis 0")
    if mode not in ("linear", "circular"):
        ctx.fail(f"TensorScatter mode '{mode}' is not 'linear' or 'circular'")
    if update.type.rank != rank or any(a != b for i, (a, b) in
                                       enumerate(zip(past_cache.shape, update.shape))
                                       if i != axis) \
            or update.shape[axis] > past_cache.shape[axis]:
        ctx.fail(f"update of shape {list(update.shape)} does not fit past_cache of shape "
                 f"{list(past_cache.shape)} along axis {axis}")
    if update.dtype != past_cache.dtype:
        ctx.fail("past_cache and update must have the same dtype")
    length, count = past_cache.shape[axis], update.shape[axis]
    batch = past_cache.shape[0]
    if write_indices is None:
        starts = ctx.const(np.zeros((batch,) + (1,) * (rank - 1), dtype=np.int64))
    else:
        starts = reshape(ctx, ctx.emit("cast", [write_indices], to=DType.int64),
                         (batch,) + (1,) * (rank - 1))
    position = _along(ctx, np.arange(length), rank, axis)
    offset = ctx.emit("sub", [position, starts])
    if mode == "circular":
        offset = ctx.emit("mod", [offset, ctx.const(np.int64(length))], fmod=0)
    inside = ctx.emit("and", [ctx.emit("greater_equal", [offset, ctx.const(np.int64(0))]),
                              ctx.emit("less", [offset, ctx.const(np.int64(count))])])
    clamped = ctx.emit("clip", [offset], min=0, max=count - 1)
    index = _broadcast_to(ctx, clamped, past_cache.shape)   # update read along axis
    moved = ctx.emit("gather_elements", [update, index], axis=axis)
    return ctx.emit("where", [_broadcast_to(ctx, inside, past_cache.shape), moved, past_cache])


#: The most column entries Col2Im scatters (each gets one compile-time int64 index).
MAX_COL2IM_ENTRIES = 1 << 24


@converter("Col2Im", since=18)
def col2im(ctx, x, image_shape, block_shape, dilations=None, pads=None, strides=None):
    """Sum the sliding blocks of x [N, C * prod(block), L] into images [N, C, *image]."""
    image = ints(ctx.value_of(image_shape, "Col2Im's image_shape"))
    block = ints(ctx.value_of(block_shape, "Col2Im's block_shape"))
    dims = len(image)
    if len(block) != dims or x.type.rank != 3:
        ctx.fail(f"Col2Im needs input [N, C*prod(block), L] and image/block shapes of one "
                 f"length, got {list(x.shape)}, {list(image)}, {list(block)}")
    dilations = ints(dilations) if dilations else (1,) * dims
    strides = ints(strides) if strides else (1,) * dims
    pads = ints(pads) if pads else (0,) * (2 * dims)
    if len(dilations) != dims or len(strides) != dims or len(pads) != 2 * dims:
        ctx.fail("Col2Im's dilations, strides and pads do not fit the image's rank")
    n, rows, cols = x.shape
    kernel = int(np.prod(block))
    if rows % kernel:
        ctx.fail(f"Col2Im input dim 1 ({rows}) is not a multiple of prod(block_shape) "
                 f"({kernel})")
    counts = [(i + pads[a] + pads[a + dims] - d * (k - 1) - 1) // s + 1
              for a, (i, k, d, s) in enumerate(zip(image, block, dilations, strides))]
    if min(counts) < 1 or int(np.prod(counts)) != cols:
        ctx.fail(f"Col2Im input dim 2 ({cols}) does not match the {counts} sliding blocks")
    if x.type.numel > MAX_COL2IM_ENTRIES:
        ctx.fail(f"Col2Im of {x.type.numel} entries is over Kiln's limit of "
                 f"{MAX_COL2IM_ENTRIES}")
    pixels = int(np.prod(image))
    target = np.empty((kernel, cols), dtype=np.int64)
    for k, offsets in enumerate(itertools.product(*[range(b) for b in block])):
        for l, starts in enumerate(itertools.product(*[range(c) for c in counts])):
            where = [s * st - pads[a] + o * d for a, (s, st, o, d) in
                     enumerate(zip(starts, strides, offsets, dilations))]
            inside = all(0 <= w < i for w, i in zip(where, image))
            target[k, l] = np.ravel_multi_index(where, image) if inside else pixels
    channels = rows // kernel
    updates = reshape(ctx, x, (n, channels, kernel * cols))
    index = ctx.const(np.broadcast_to(target.reshape(-1), (n, channels, kernel * cols)).copy())
    zeros = ctx.const(np.zeros((n, channels, pixels + 1), dtype=x.dtype.numpy))
    summed = ctx.emit("scatter_elements", [zeros, index, updates], axis=2, reduction="add")
    image_values = ctx.emit("slice", [summed], starts=(0, 0, 0), ends=(n, channels, pixels),
                            steps=(1, 1, 1))
    return reshape(ctx, image_values, (n, channels) + tuple(image))


def gather_nd_batched(ctx, data, indices, batch_dims: int):
    """GatherND with batch_dims > 0: the leading batch dims flattened into one, each batch's
    indices offset into its own block of data, then one gather along axis 0."""
    if not 0 < batch_dims < min(data.type.rank, indices.type.rank):
        ctx.fail(f"GatherND batch_dims={batch_dims} must be below both ranks")
    if data.shape[:batch_dims] != indices.shape[:batch_dims]:
        ctx.fail(f"GatherND's data {list(data.shape)} and indices {list(indices.shape)} "
                 f"differ in their {batch_dims} batch dims")
    k = indices.shape[-1]
    if batch_dims + k > data.type.rank:
        ctx.fail(f"GatherND's indices address {k} dims past the batch dims of data of shape "
                 f"{list(data.shape)}")
    batch = int(np.prod(data.shape[:batch_dims], dtype=np.int64))
    lead = data.shape[batch_dims:batch_dims + k]
    block = int(np.prod(lead, dtype=np.int64))
    middle = indices.shape[batch_dims:-1]
    idx = reshape(ctx, ctx.emit("cast", [indices], to=DType.int64),
                  (batch, int(np.prod(middle, dtype=np.int64)), k))
    negative = ctx.emit("less", [idx, ctx.const(np.int64(0))])
    wrapped = ctx.emit("where", [negative, ctx.emit("add", [idx, ctx.const(
        np.array(lead, dtype=np.int64))]), idx])
    strides = np.array([int(np.prod(lead[i + 1:], dtype=np.int64)) for i in range(k)],
                       dtype=np.int64)
    flat = ctx.emit("reduce_sum", [ctx.emit("mul", [wrapped, ctx.const(strides)])],
                    axes=(2,), keepdims=False)
    offsets = ctx.const((np.arange(batch, dtype=np.int64) * block).reshape(batch, 1))
    flat = ctx.emit("add", [flat, offsets])
    rest = data.shape[batch_dims + k:]
    rows = reshape(ctx, data, (batch * block,) + rest)
    picked = ctx.emit("gather", [rows, flat], axis=0)
    return reshape(ctx, picked, data.shape[:batch_dims] + middle + rest)


def diagonal(ctx, x, term: str):
    """x with every index letter repeated in `term` reduced to its diagonal (einsum 'ii->i'),
    and the term with each letter once (the diagonal's axis last)."""
    while len(set(term)) != len(term):
        letter = next(c for c in term if term.count(c) > 1)
        first = term.index(letter)
        second = term.index(letter, first + 1)
        size = x.shape[first]
        if x.shape[second] != size:
            ctx.fail(f"einsum index '{letter}' has sizes {size} and {x.shape[second]} in "
                     f"one operand")
        others = [i for i in range(len(term)) if i not in (first, second)]
        moved = ctx.emit("transpose", [x], perm=tuple(others) + (first, second))
        lead = tuple(x.shape[i] for i in others)
        flat = reshape(ctx, moved, lead + (size * size,))
        x = ctx.emit("slice", [flat], starts=(0,) * len(flat.shape),
                     ends=lead + (size * size,), steps=(1,) * len(lead) + (size + 1,))
        term = "".join(term[i] for i in others) + letter
    return x, term
