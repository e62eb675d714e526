"""Which conv2d groups run on the register-blocked GEMM microkernels, and their packed weights.

conv_gemm_tile picks the tile (None: the portable scalar loops of dense.py); pack_conv_weight
stores W [OC, ICg, KH, KW] as row panels of mr output channels at compile time (gemm_pack.py
calls both). The kernels themselves: conv_band.py (stride 1, a padded band of input rows)
and conv_im2col.py (any stride, im2col chunks), both cache-blocked over panels and K.
"""

from __future__ import annotations

import numpy as np

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup, Node
from .conv_geometry import epilogue_fits
from .gemm import Tile, pack_rows, tile_for


def conv_gemm_tile(group: FusedGroup, vector_bits: int) -> Tile | None:
    """The tile the GEMM path uses for this conv group, or None (use the scalar loops)."""
    node = group.anchor
    tile = tile_for(vector_bits)
    if tile is None or node.op != "conv2d" or len(node.inputs[0].shape) != 4:
        return None
    x, w = node.inputs[0], node.inputs[1]
    if not w.is_constant or len(w.users) != 1 or x.dtype is not DType.float32:
        return None
    if group_output_dtype(group) is not DType.float32:
        return None
    oc, icg = w.shape[0], w.shape[1]
    if node.attrs["group"] > 1 and icg == 1 and oc == node.attrs["group"]:
        return None   # depthwise: too little reuse for a GEMM
    return tile if epilogue_fits(group) else None


def group_output_dtype(group: FusedGroup) -> DType:
    return group.nodes[-1].output.dtype


def pack_conv_weight(node: Node, tile: Tile) -> np.ndarray:
    """W [OC, ICg, KH, KW] as row panels per group: [G][panels of mr oc][K][mr]."""
    w = node.inputs[1].data.astype(np.float32)
    groups = node.attrs["group"]
    ocg = w.shape[0] // groups
    flat = w.reshape(w.shape[0], -1)
    return np.concatenate([pack_rows(flat[g * ocg:(g + 1) * ocg], tile.mr)
                           for g in range(groups)])
