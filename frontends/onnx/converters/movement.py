"""Data movement ONNX ops: Transpose, Concat, Split, Slice, Gather, GatherND and Pad ->
IR transpose/concat/slice/gather/pad (GatherND as a gather over flattened leading dims)."""

from __future__ import annotations

import numpy as np

from ..registry import converter
from .common import axes_of, axis_of, ints, python_scalar, reshape, scalar


@converter("Transpose", since=1)
def transpose(ctx, x, perm=None):
    perm = tuple(reversed(range(x.type.rank))) if perm is None else ints(perm)
    if sorted(perm) != list(range(x.type.rank)):
        ctx.fail(f"perm {list(perm)} is not a permutation of {x.type.rank} axes")
    if perm == tuple(range(x.type.rank)):
        return x
    return ctx.emit("transpose", [x], perm=perm)


@converter("Concat", since=1)
def concat(ctx, *xs, axis=None):
    """`axis` defaults to 1 in opset 1-3 and is required from 4. Empty inputs are dropped."""
    if not xs or any(x is None for x in xs):
        ctx.fail("Concat needs at least one input")
    if axis is None:
        if ctx.opset >= 4:
            ctx.fail("Concat has no axis attribute")
        axis = 1
    axis = axis_of(ctx, axis, xs[0].type.rank)
    kept = [x for x in xs if x.shape[axis] != 0] or [xs[0]]
    if len(kept) == 1 and all(x.type.rank == kept[0].type.rank for x in xs):
        return kept[0]
    return ctx.emit("concat", kept, axis=axis)


# -- Slice and Split: IR slices with a full, clamped (start, end, step) per axis ---------------

def _full_slice(ctx, x, starts, ends, axes, steps):
    """IR slice attributes: one python-range-clamped (start, end, step) per axis of x."""
    if axes is None:
        axes = tuple(range(len(starts)))
    if steps is None:
        steps = (1,) * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        ctx.fail(f"starts {list(starts)}, ends {list(ends)}, axes {list(axes)} and steps "
                 f"{list(steps)} differ in length")
    normalized = [axis_of(ctx, a, x.type.rank, "slice axis") for a in axes]
    if len(set(normalized)) != len(normalized):
        ctx.fail(f"slice axes {list(axes)} name an axis twice")
    bounds = [(0, d, 1) for d in x.shape]
    for axis, start, end, step in zip(normalized, starts, ends, steps):
        if step == 0:
            ctx.fail("slice step 0 is not allowed")
        bounds[axis] = slice(int(start), int(end), int(step)).indices(x.shape[axis])
    return tuple(zip(*bounds)) if bounds else ((), (), ())


def _emit_slice(ctx, x, bounds):
    starts, ends, steps = bounds
    if all(s == 0 and e == d and st == 1 for s, e, st, d in zip(starts, ends, steps, x.shape)):
        return x
    return ctx.emit("slice", [x], starts=starts, ends=ends, steps=steps)


@converter("Slice", since=1)
def slice_attributes(ctx, x, starts=None, ends=None, axes=None):
    if starts is None or ends is None:
        ctx.fail("Slice needs starts and ends attributes")
    bounds = _full_slice(ctx, x, ints(starts), ints(ends),
                         ints(axes) if axes is not None else None, None)
    return _emit_slice(ctx, x, bounds)


@converter("Slice", since=10)
def slice_inputs(ctx, x, starts, ends, axes=None, steps=None):
    values = [ints(ctx.value_of(v, f"Slice's {what}")) if v is not None else None
              for v, what in ((starts, "starts"), (ends, "ends"), (axes, "axes"),
                              (steps, "steps"))]
    return _emit_slice(ctx, x, _full_slice(ctx, x, *values))


def _split(ctx, x, axis, sizes, num_outputs=None):
    """One slice per output along `axis`. Without sizes: equal parts (opset 18's
    num_outputs allows a smaller last part)."""
    axis = axis_of(ctx, axis, x.type.rank)
    dim = x.shape[axis]
    count = len(ctx.node.output)
    if sizes is None:
        parts = num_outputs or count
        if num_outputs is not None and num_outputs != count:
            ctx.fail(f"num_outputs={num_outputs} but the node has {count} outputs")
        if num_outputs is None and dim % parts:
            ctx.fail(f"cannot split a dim of {dim} into {parts} equal parts",
                     "give the split sizes")
        chunk = -(-dim // parts)
        sizes = [min(chunk, dim - i * chunk) for i in range(parts)]
    if len(sizes) != count or sum(sizes) != dim or any(s < 0 for s in sizes):
        ctx.fail(f"split sizes {list(sizes)} do not cut a dim of {dim} into {count} outputs")
    outputs, start = [], 0
    for size in sizes:
        begins = tuple(start if i == axis else 0 for i in range(x.type.rank))
        ends = tuple(start + size if i == axis else d for i, d in enumerate(x.shape))
        outputs.append(ctx.emit("slice", [x], starts=begins, ends=ends,
                                steps=(1,) * x.type.rank))
        start += size
    return outputs


@converter("Split", since=1)
def split_v1(ctx, x, split=None, axis=0):
    """Opset 1: sizes as the optional second input or the `split` attribute."""
    if split is not None and not isinstance(split, (list, tuple)):
        split = ctx.value_of(split, "Split's split")
    return _split(ctx, x, axis, ints(split) if split is not None else None)


@converter("Split", since=2)
def split_attribute(ctx, x, axis=0, split=None):
    return _split(ctx, x, axis, ints(split) if split is not None else None)


@converter("Split", since=13)
def split_input(ctx, x, split=None, axis=0, num_outputs=None):
    sizes = ints(ctx.value_of(split, "Split's split")) if split is not None else None
    if sizes is not None and num_outputs is not None:
        ctx.fail("Split has both a split input and num_outputs")
    return _split(ctx, x, axis, sizes, num_outputs)


# -- Gather ------------------------------------------------------------------------------------

@converter("Gather", since=1)
def gather(ctx, data, indices, axis=0):
    return ctx.emit("gather", [data, indices], axis=axis_of(ctx, axis, data.type.rank))


@converter("GatherND", since=11)
def gather_nd(ctx, data, indices, batch_dims=0):
    """batch_dims=0: flat index = sum(index * stride) over the first k dims of data, then
    a gather along axis 0 of data viewed as [d0 * ... * d(k-1), rest...]."""
    if batch_dims:
        from .rearrange import gather_nd_batched
        return gather_nd_batched(ctx, data, indices, int(batch_dims))
    if indices.type.rank == 0:
        ctx.fail("GatherND's indices must have rank 1 or more")
    k = indices.shape[-1]
    if k > data.type.rank:
        ctx.fail(f"GatherND's indices address {k} dims of data of shape {data.shape}")
    lead = data.shape[:k]
    idx_dtype = indices.dtype.numpy
    dims = ctx.const(np.array(lead, dtype=idx_dtype))
    strides = ctx.const(np.array([int(np.prod(lead[i + 1:], dtype=np.int64))
                                  for i in range(k)], dtype=idx_dtype))
    negative = ctx.emit("less", [indices, scalar(ctx, 0, indices)])
    wrapped = ctx.emit("where", [negative, ctx.emit("add", [indices, dims]), indices])
    flat_index = ctx.emit("reduce_sum", [ctx.emit("mul", [wrapped, strides])],
                          axes=(indices.type.rank - 1,), keepdims=False)
    rows = int(np.prod(lead, dtype=np.int64))
    flat_data = reshape(ctx, data, (rows,) + data.shape[k:])
    return ctx.emit("gather", [flat_data, flat_index], axis=0)


# -- Pad ---------------------------------------------------------------------------------------

_PAD_MODES = ("constant", "reflect", "edge", "wrap")


def _pad(ctx, x, pads, mode, value):
    if mode not in _PAD_MODES:
        ctx.fail(f"pad mode '{mode}' is not supported", f"use one of {', '.join(_PAD_MODES)}")
    if len(pads) != 2 * x.type.rank:
        ctx.fail(f"pads has {len(pads)} values, expected {2 * x.type.rank} for shape {x.shape}")
    if not any(pads):
        return x
    value = float(value) if x.dtype.is_float else int(value)
    attrs = {"pads": tuple(pads), "mode": mode}
    if mode == "constant":
        attrs["value"] = value
    return ctx.emit("pad", [x], **attrs)


@converter("Pad", since=1)
def pad_v1(ctx, x, paddings=None, mode="constant", value=0.0):
    if paddings is None:
        ctx.fail("Pad has no paddings attribute")
    return _pad(ctx, x, ints(paddings), mode, value)


@converter("Pad", since=2)
def pad_attribute(ctx, x, pads=None, mode="constant", value=0.0):
    if pads is None:
        ctx.fail("Pad has no pads attribute")
    return _pad(ctx, x, ints(pads), mode, value)


@converter("Pad", since=11)
def pad_input(ctx, x, pads, constant_value=None, axes=None, mode="constant"):
    """From opset 18 `axes` says which axes `pads` covers (the rest are not padded)."""
    given = ints(ctx.value_of(pads, "Pad's pads"))
    value = 0
    if constant_value is not None:
        value = python_scalar(ctx.value_of(constant_value, "Pad's constant_value"))
    if axes is not None:
        chosen = ints(ctx.value_of(axes, "Pad's axes"))
        if len(given) != 2 * len(chosen):
            ctx.fail(f"pads has {len(given)} values for {len(chosen)} axes")
        axes_of(ctx, chosen, x.type.rank, "Pad's axes")   # in range and distinct
        full = [0] * (2 * x.type.rank)
        for i, axis in enumerate(chosen):
            axis = axis_of(ctx, axis, x.type.rank)
            full[axis] = given[i]
            full[axis + x.type.rank] = given[i + len(chosen)]
        given = tuple(full)
    return _pad(ctx, x, given, mode, value)
