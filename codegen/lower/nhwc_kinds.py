"""Which conv2d nodes the NHWC kernels run (passes/channels_last.py moves those to NHWC)."""

from __future__ import annotations

from ...compiler.dtypes import DType
from ...compiler.ir import Node

#: largest depthwise window the NHWC depthwise kernel unrolls
MAX_DEPTHWISE_TAPS = 49
#: fewest channels of a depthwise conv run in NHWC (one AVX-512 vector)
MIN_DEPTHWISE_CHANNELS = 16


def nhwc_conv_kind(node: Node) -> str | None:
    """'dense' or 'depthwise' when an NHWC kernel can run conv2d `node`, else None."""
    if node.op != "conv2d" or len(node.inputs[0].shape) != 4:
        return None
    x, w = node.inputs[0], node.inputs[1]
    if x.dtype is not DType.float32 or node.output.dtype is not DType.float32 \
            or not w.is_constant or w.dtype is not DType.float32:
        return None
    if len(node.inputs) > 2 and node.inputs[2].shape != (w.shape[0],):
        return None
    groups = node.attrs["group"]
    if groups == 1:
        shared = len({id(u) for u in w.users}) > 1   # its packed copy replaces the constant
        return "dense" if node.attrs["dilations"][1] == 1 and not shared else None
    # input channels = group * w.shape[1] (the op's shape rule): depthwise is one per group
    if groups == w.shape[0] and w.shape[1] == 1 and groups >= MIN_DEPTHWISE_CHANNELS \
            and w.shape[2] * w.shape[3] <= MAX_DEPTHWISE_TAPS and len(w.users) == 1:
        return "depthwise"
    return None
