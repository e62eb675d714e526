"""GridSample (opset 16: 4-D, bilinear/bicubic names; opset 20: N-D, linear/cubic)."""

from __future__ import annotations

from ..registry import converter

_MODES = {"bilinear": "linear", "bicubic": "cubic", "linear": "linear", "cubic": "cubic",
          "nearest": "nearest"}


def _grid_sample(ctx, x, grid, mode, padding_mode, align_corners):
    if mode not in _MODES:
        ctx.fail(f"GridSample mode '{mode}' is not defined")
    if padding_mode not in ("zeros", "border", "reflection"):
        ctx.fail(f"padding_mode '{padding_mode}' is not defined")
    rank = x.type.rank - 2
    if rank < 1 or grid.type.rank != rank + 2 or grid.shape[0] != x.shape[0] or \
            grid.shape[-1] != rank:
        ctx.fail(f"grid {grid.shape} does not fit input {x.shape}")
    if not x.dtype.is_float:
        ctx.fail(f"GridSample of {x.dtype.name} tensors is not supported")
    return ctx.emit("grid_sample", [x, grid], mode=_MODES[mode], padding_mode=padding_mode,
                    align_corners=int(align_corners))


@converter("GridSample", since=16)
def grid_sample_16(ctx, x, grid, align_corners=0, mode="bilinear", padding_mode="zeros"):
    return _grid_sample(ctx, x, grid, mode, padding_mode, align_corners)


@converter("GridSample", since=20)
def grid_sample(ctx, x, grid, align_corners=0, mode="linear", padding_mode="zeros"):
    return _grid_sample(ctx, x, grid, mode, padding_mode, align_corners)
