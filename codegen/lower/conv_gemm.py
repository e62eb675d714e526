"""Which conv2d groups run on the register-blocked GEMM microkernels, and their packed weights.

nchw_gemm_rejects says which groups they can run; pack_conv_weight stores W [OC, ICg, KH,
KW] as row panels of mr output channels at compile time (codegen/kernels/ declares both).
The kernels themselves: conv_band.py (stride 1, a padded band of input rows) and
conv_im2col.py (any stride, im2col chunks), both cache-blocked over panels and K.
"""

from __future__ import annotations

import numpy as np

from ...compiler.dtypes import DType
from ...compiler.ir import FusedGroup, Node
from .conv_geometry import epilogue_fits
from .gemm import pack_rows


def nchw_gemm_rejects(group: FusedGroup) -> str | None:
    """Why the NCHW GEMM kernels (band, im2col) cannot run this conv group (None: they can)."""
    node = group.anchor
    if len(node.inputs[0].shape) != 4:
        return "not a 2-D conv"
    x, w = node.inputs[0], node.inputs[1]
    if not w.is_constant or len(w.users) != 1:
        return "the weights are not a constant read only by this conv"
    if x.dtype is not DType.float32 or group.nodes[-1].output.dtype is not DType.float32:
        return "the microkernels are float32"
    oc, icg = w.shape[0], w.shape[1]
    if node.attrs["group"] > 1 and icg == 1 and oc == node.attrs["group"]:
        return "a depthwise conv has too little reuse for a GEMM"
    if not epilogue_fits(group):
        return "an epilogue operand does not fold onto the output as (N, C, H*W)"
    return None


def pack_conv_weight(node: Node, mr: int) -> np.ndarray:
    """W [OC, ICg, KH, KW] as row panels per group: [G][panels of mr oc][K][mr]."""
    w = node.inputs[1].data.astype(np.float32)
    groups = node.attrs["group"]
    ocg = w.shape[0] // groups
    flat = w.reshape(w.shape[0], -1)
    return np.concatenate([pack_rows(flat[g * ocg:(g + 1) * ocg], mr)
                           for g in range(groups)])
