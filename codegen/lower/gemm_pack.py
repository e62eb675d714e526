"""Compile-time weight packing: the constants the microkernels read, in their panel layout.

`prepack` decides, group by group, which conv/matmul goes through the GEMM path for a vector
width and returns each packed constant by the id of the Value it replaces in the weights
blob. The lowerings read `Storage.packed` to know the layout, so the decision is made once.
"""

from __future__ import annotations

import numpy as np

from ...compiler.ir import FusedGroup, Graph, Node
from .conv_gemm import conv_gemm_tile, pack_conv_weight
from .conv_nhwc import nhwc_tile, pack_nhwc_weight
from .conv_nhwc_depthwise import pack_depthwise_weight
from .conv_winograd import winograd_plan
from .nhwc_kinds import nhwc_conv_kind
from .matmul_gemm import matmul_gemm_tile, pack_matmul_weight


def prepack(graph: Graph, vector_bits: int) -> dict[int, np.ndarray]:
    """id(constant) -> its packed data, for every group that takes the microkernel path."""
    packed: dict[int, np.ndarray] = {}
    for group in graph.groups or []:
        data = _pack_group(group, vector_bits)
        if data is not None:
            packed[id(group.anchor.inputs[1])] = data
        for node in group.nodes[1:]:   # a depthwise conv fused after a 1x1 one
            if node.op == "conv2d":
                packed[id(node.inputs[1])] = _pack_nhwc(node, vector_bits)
    return packed


def _pack_nhwc(node: Node, vector_bits: int) -> np.ndarray | None:
    if nhwc_conv_kind(node) == "depthwise":
        return pack_depthwise_weight(node)
    if winograd_plan(node, vector_bits) is not None:
        return None   # transformed at session creation (conv_winograd.py)
    return pack_nhwc_weight(node, nhwc_tile(node, vector_bits))


def _pack_group(group: FusedGroup, vector_bits: int) -> np.ndarray | None:
    node = group.anchor
    if node.op == "conv2d" and node.attrs.get("layout") == "NHWC":
        return _pack_nhwc(node, vector_bits)
    if node.op == "conv2d":
        tile = conv_gemm_tile(group, vector_bits)
        return pack_conv_weight(node, tile) if tile is not None else None
    if node.op == "matmul":
        tile = matmul_gemm_tile(group, vector_bits)
        return pack_matmul_weight(node, tile) if tile is not None else None
    return None
