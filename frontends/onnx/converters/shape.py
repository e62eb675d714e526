"""Ops that only change a tensor's shape (or repeat it): Reshape, Flatten, Squeeze,
Unsqueeze, Expand, Tile, DepthToSpace, SpaceToDepth -> IR reshape/expand/transpose."""

from __future__ import annotations

import numpy as np

from ..importer import check_tensor_size
from ..registry import converter
from .common import axes_of, ints, reshape


def _resolve_shape(ctx, x, requested, allowzero):
    """A static shape from Reshape's spec: 0 copies the input dim (unless allowzero),
    one -1 is inferred from the element count."""
    shape = []
    for i, d in enumerate(requested):
        if d == 0 and not allowzero:
            if i >= x.type.rank:
                ctx.fail(f"shape {list(requested)} copies dim {i} (0), but the input has "
                         f"rank {x.type.rank}")
            d = x.shape[i]
        elif d < -1:
            ctx.fail(f"shape {list(requested)} has an invalid dim {d}")
        shape.append(d)
    if shape.count(-1) > 1:
        ctx.fail(f"shape {list(requested)} has more than one -1")
    if -1 in shape:
        if allowzero and 0 in shape:
            ctx.fail(f"shape {list(requested)} has both 0 (with allowzero=1) and -1")
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        if known == 0 or x.type.numel % known:
            ctx.fail(f"cannot reshape {x.shape} to {list(requested)}")
        shape[shape.index(-1)] = x.type.numel // known
    if int(np.prod(shape, dtype=np.int64)) != x.type.numel:
        ctx.fail(f"cannot reshape {x.shape} to {list(requested)}")
    return tuple(shape)


@converter("Reshape", since=1)
def reshape_attribute(ctx, x, shape=None, consumed_inputs=None):
    if shape is None:
        ctx.fail("Reshape has no shape attribute")
    return reshape(ctx, x, _resolve_shape(ctx, x, ints(shape), False))


@converter("Reshape", since=5)
def reshape_input(ctx, x, shape, allowzero=0):
    requested = ints(ctx.value_of(shape, "Reshape's shape"))
    return reshape(ctx, x, _resolve_shape(ctx, x, requested, allowzero))


@converter("Flatten", since=1)
def flatten(ctx, x, axis=1):
    axis = int(axis)
    if not -x.type.rank <= axis <= x.type.rank:
        ctx.fail(f"axis {axis} is out of range for a rank-{x.type.rank} tensor")
    axis = axis + x.type.rank if axis < 0 else axis
    rows = int(np.prod(x.shape[:axis], dtype=np.int64))
    return reshape(ctx, x, (rows, int(np.prod(x.shape[axis:], dtype=np.int64))))


def _squeeze(ctx, x, axes):
    if axes is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    axes = axes_of(ctx, axes, x.type.rank)
    for axis in axes:
        if x.shape[axis] != 1:
            ctx.fail(f"cannot squeeze axis {axis} of shape {x.shape}: its size is not 1")
    return reshape(ctx, x, tuple(d for i, d in enumerate(x.shape) if i not in axes))


def _unsqueeze(ctx, x, axes):
    rank = x.type.rank + len(axes)
    axes = axes_of(ctx, axes, rank)
    dims = iter(x.shape)
    return reshape(ctx, x, tuple(1 if i in axes else next(dims) for i in range(rank)))


@converter("Squeeze", since=1)
def squeeze_attribute(ctx, x, axes=None):
    return _squeeze(ctx, x, ints(axes) if axes is not None else None)


@converter("Squeeze", since=13)
def squeeze_input(ctx, x, axes=None):
    return _squeeze(ctx, x, ints(ctx.value_of(axes, "Squeeze's axes"))
                    if axes is not None else None)


@converter("Unsqueeze", since=1)
def unsqueeze_attribute(ctx, x, axes=None):
    if axes is None:
        ctx.fail("Unsqueeze has no axes attribute")
    return _unsqueeze(ctx, x, ints(axes))


@converter("Unsqueeze", since=13)
def unsqueeze_input(ctx, x, axes):
    return _unsqueeze(ctx, x, ints(ctx.value_of(axes, "Unsqueeze's axes")))


@converter("Expand", since=8)
def expand(ctx, x, shape):
    dims = ints(ctx.value_of(shape, "Expand's shape"))
    try:
        target = tuple(int(d) for d in np.broadcast_shapes(x.shape, dims))
    except ValueError:
        ctx.fail(f"cannot expand shape {x.shape} to {list(dims)}")
    if target == x.shape:
        return x
    return ctx.emit("expand", [x], shape=target)


@converter("Tile", since=6)
def tile(ctx, x, repeats):
    """Constant input: folded. Otherwise x [d0, d1, ...] is viewed as [1, d0, 1, d1, ...],
    expanded to [r0, d0, r1, d1, ...] and merged pairwise."""
    reps = ints(ctx.value_of(repeats, "Tile's repeats"))
    if len(reps) != x.type.rank or any(r < 0 for r in reps):
        ctx.fail(f"repeats {list(reps)} do not fit an input of shape {x.shape}")
    if x.is_constant:
        check_tensor_size([d * r for d, r in zip(x.shape, reps)], x.dtype.itemsize,
                          "Tile's result")
        return ctx.const(np.tile(x.data, reps))
    if all(r == 1 for r in reps):
        return x
    interleaved = tuple(v for d in x.shape for v in (1, d))
    wide = tuple(v for r, d in zip(reps, x.shape) for v in (r, d))
    y = ctx.emit("expand", [reshape(ctx, x, interleaved)], shape=wide)
    return reshape(ctx, y, tuple(r * d for r, d in zip(reps, x.shape)))


@converter("DepthToSpace", since=1)
def depth_to_space(ctx, x, blocksize=None, mode="DCR"):
    if x.type.rank != 4 or not blocksize or x.shape[1] % (blocksize * blocksize):
        ctx.fail(f"DepthToSpace needs a 4-D input whose channels divide by blocksize^2, "
                 f"got {x.shape} and blocksize {blocksize}")
    n, c, h, w = x.shape
    b = int(blocksize)
    if mode == "DCR":
        y = reshape(ctx, x, (n, b, b, c // (b * b), h, w))
        y = ctx.emit("transpose", [y], perm=(0, 3, 4, 1, 5, 2))
    elif mode == "CRD":
        y = reshape(ctx, x, (n, c // (b * b), b, b, h, w))
        y = ctx.emit("transpose", [y], perm=(0, 1, 4, 2, 5, 3))
    else:
        ctx.fail(f"mode '{mode}' is not valid", "use DCR or CRD")
    return reshape(ctx, y, (n, c // (b * b), h * b, w * b))


@converter("SpaceToDepth", since=1)
def space_to_depth(ctx, x, blocksize=None):
    if x.type.rank != 4 or not blocksize or x.shape[2] % blocksize or x.shape[3] % blocksize:
        ctx.fail(f"SpaceToDepth needs a 4-D input whose height and width divide by "
                 f"blocksize, got {x.shape} and blocksize {blocksize}")
    n, c, h, w = x.shape
    b = int(blocksize)
    y = reshape(ctx, x, (n, c, h // b, b, w // b, b))
    y = ctx.emit("transpose", [y], perm=(0, 3, 5, 1, 2, 4))
    return reshape(ctx, y, (n, c * b * b, h // b, w // b))
