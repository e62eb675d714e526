"""RotaryEmbedding (opset 23) composed from IR ops: the caches gathered by position ids,
halves (or even/odd lanes) rotated with cos/sin, the unrotated tail concatenated back."""

from __future__ import annotations

from ..registry import converter
from .common import reshape


def _lanes(ctx, x, start: int, count: int, step: int):
    """x[..., start : start + step * count : step] on the last axis."""
    rank = x.type.rank
    starts = (0,) * (rank - 1) + (start,)
    ends = tuple(x.shape[:-1]) + (start + step * (count - 1) + 1,)
    return ctx.emit("slice", [x], starts=starts, ends=ends, steps=(1,) * (rank - 1) + (step,))


@converter("RotaryEmbedding", since=23)
def rotary_embedding(ctx, x, cos_cache, sin_cache, position_ids=None, interleaved=0,
                     num_heads=0, rotary_embedding_dim=0):
    rank = x.type.rank
    if rank == 4:   # [B, H, S, D] -> [B, S, H, D]
        work = ctx.emit("transpose", [x], perm=(0, 2, 1, 3))
    elif rank == 3:
        if not num_heads or x.shape[2] % num_heads:
            ctx.fail(f"a 3-D input needs num_heads dividing its hidden size {x.shape[2]}")
        work = reshape(ctx, x, (x.shape[0], x.shape[1], num_heads, x.shape[2] // num_heads))
    else:
        ctx.fail(f"RotaryEmbedding needs a 3-D or 4-D input, got {x.shape}")
    batch, seq, heads, head_size = work.shape
    dim = rotary_embedding_dim or head_size
    half = dim // 2
    if position_ids is not None:
        cos_cache = ctx.emit("gather", [cos_cache, position_ids], axis=0)
        sin_cache = ctx.emit("gather", [sin_cache, position_ids], axis=0)
    if cos_cache.shape[-1] != half or sin_cache.shape[-1] != half:
        ctx.fail(f"the caches' last dim {cos_cache.shape[-1]} is not rotary_dim/2 = {half}")
    cos = reshape(ctx, cos_cache, (batch, seq, 1, half))
    sin = reshape(ctx, sin_cache, (batch, seq, 1, half))
    if interleaved:
        x1, x2 = _lanes(ctx, work, 0, half, 2), _lanes(ctx, work, 1, half, 2)
    else:
        x1, x2 = _lanes(ctx, work, 0, half, 1), _lanes(ctx, work, half, half, 1)
    real = ctx.emit("sub", [ctx.emit("mul", [cos, x1]), ctx.emit("mul", [sin, x2])])
    imag = ctx.emit("add", [ctx.emit("mul", [sin, x1]), ctx.emit("mul", [cos, x2])])
    if interleaved:
        pairs = ctx.emit("concat", [reshape(ctx, real, real.shape + (1,)),
                                    reshape(ctx, imag, imag.shape + (1,))], axis=4)
        rotated = reshape(ctx, pairs, (batch, seq, heads, dim))
    else:
        rotated = ctx.emit("concat", [real, imag], axis=3)
    if dim < head_size:
        rotated = ctx.emit("concat", [rotated, _lanes(ctx, work, dim, head_size - dim, 1)],
                           axis=3)
    if rank == 4:
        return ctx.emit("transpose", [rotated], perm=(0, 2, 1, 3))
    return reshape(ctx, rotated, x.shape)
