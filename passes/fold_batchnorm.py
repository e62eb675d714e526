"""Fold an inference `batch_norm` that follows a `conv2d` into the conv's weight and bias.

    y = batch_norm(conv2d(x, W, b), scale, shift, mean, var)
      = conv2d(x, W * k[:, None, None, None], (b - mean) * k + shift)
    where k = scale / sqrt(var + eps)

Applies when the conv's output is read only by the batch_norm (and is no graph output) and
every parameter is a constant. The new weights are computed in float64 and stored in the conv's dtype; the old
constants stay untouched (another conv may share them).
"""

from __future__ import annotations

import numpy as np

from ..compiler.ir import Graph, Node


def fold_batchnorm(graph: Graph) -> Graph:
    """The batch_norm's arithmetic moves into the conv's weights and costs nothing at run time."""
    for node in graph:
        conv = _foldable_conv(graph, node)
        if conv is not None:
            _fold(graph, conv, node)
    return graph


def _foldable_conv(graph: Graph, bn: Node) -> Node | None:
    """The conv2d that batch_norm `bn` can be folded into, or None."""
    if bn.op != "batch_norm":
        return None
    x = bn.inputs[0]
    conv = x.producer
    if conv is None or conv.op != "conv2d" or len(x.users) != 1 \
            or any(v is x for v in graph.outputs):
        return None
    if not all(v.is_constant for v in conv.inputs[1:] + bn.inputs[1:]):
        return None
    channels = conv.inputs[1].shape[0]
    if not x.dtype.is_float or any(v.shape != (channels,) for v in bn.inputs[1:]):
        return None
    return conv


def _fold(graph: Graph, conv: Node, bn: Node) -> None:
    scale, shift, mean, var = (v.data.astype(np.float64) for v in bn.inputs[1:])
    weight = conv.inputs[1]
    k = scale / np.sqrt(var + bn.attrs["epsilon"])
    out_channels = weight.shape[0]
    bias = conv.inputs[2].data.astype(np.float64) if len(conv.inputs) > 2 \
        else np.zeros(out_channels)
    dtype = weight.dtype.numpy
    new_weight = weight.data.astype(np.float64) * k.reshape(-1, 1, 1, 1)
    new_bias = (bias - mean) * k + shift
    graph.set_input(conv, 1, graph.constant(new_weight.astype(dtype), f"{conv.name}_w_bn"))
    bias_value = graph.constant(new_bias.astype(dtype), f"{conv.name}_b_bn")
    if len(conv.inputs) > 2:
        graph.set_input(conv, 2, bias_value)
    else:
        conv.inputs.append(bias_value)
        bias_value.users.append(conv)
    graph.remove(bn)
    graph.replace_uses(bn.output, conv.output)
