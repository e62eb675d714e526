"""Which conv2d nodes the NHWC kernels can run (the registry's NHWC entries ask these)."""

from __future__ import annotations

from ...compiler.dtypes import DType
from ...compiler.ir import Node

#: largest depthwise window the NHWC depthwise kernel unrolls
MAX_DEPTHWISE_TAPS = 49
#: fewest channels of a depthwise conv run in NHWC (one AVX-512 vector)
MIN_DEPTHWISE_CHANNELS = 16


def _float32_rejects(node: Node) -> str | None:
    if node.op != "conv2d" or len(node.inputs[0].shape) != 4:
        return "not a 2-D conv"
    x, w = node.inputs[0], node.inputs[1]
    if x.dtype is not DType.float32 or node.output.dtype is not DType.float32 \
            or not w.is_constant or w.dtype is not DType.float32:
        return "the NHWC kernels run float32 convs with constant weights"
    if len(node.inputs) > 2 and node.inputs[2].shape != (w.shape[0],):
        return "the bias is not one value per output channel"
    return None


def nhwc_dense_rejects(node: Node) -> str | None:
    """Why the NHWC implicit-GEMM kernel cannot run conv2d `node` (None: it can)."""
    reason = _float32_rejects(node)
    if reason is not None:
        return reason
    w = node.inputs[1]
    if node.attrs["group"] != 1:
        return "a grouped conv"
    if len({id(u) for u in w.users}) > 1:   # its packed copy replaces the constant
        return "the weights are shared with another node"
    if node.attrs["dilations"][1] != 1:
        return "dilation along W"
    return None


def nhwc_depthwise_rejects(node: Node) -> str | None:
    """Why the NHWC depthwise kernel cannot run conv2d `node` (None: it can)."""
    reason = _float32_rejects(node)
    if reason is not None:
        return reason
    w = node.inputs[1]
    groups = node.attrs["group"]
    # input channels = group * w.shape[1] (the op's shape rule): depthwise is one per group
    if groups != w.shape[0] or w.shape[1] != 1:
        return "not a depthwise conv"
    if groups < MIN_DEPTHWISE_CHANNELS:
        return f"fewer than {MIN_DEPTHWISE_CHANNELS} channels"
    if w.shape[2] * w.shape[3] > MAX_DEPTHWISE_TAPS:
        return f"more than {MAX_DEPTHWISE_TAPS} taps"
    if len(w.users) != 1:
        return "the weights are shared with another node"
    return None
