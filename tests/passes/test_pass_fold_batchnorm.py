"""Folding batch_norm into the conv before it."""

import numpy as np

from kiln.compiler.ir import Graph
from kiln.passes.fold_batchnorm import fold_batchnorm

from pass_helpers import batch_norm, check, conv, f32, op, random_feeds, run


def conv_bn(bias: bool, exact: bool = False) -> Graph:
    g = Graph("convbn")
    x = g.add_input("x", f32(1, 3, 6, 6))
    c = conv(g, "conv", x, 4, bias=bias)
    y = batch_norm(g, "bn", c, exact=exact)
    g.outputs = [op(g, "relu", "relu", [y])]
    return g


def folds_numerically_equal(g: Graph) -> None:
    feeds = random_feeds(g)
    (before,) = run(g, feeds)
    fold_batchnorm(g)
    (after,) = run(g, feeds)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)


def test_folds_into_conv_and_creates_bias():
    g = conv_bn(bias=False, exact=True)
    weight = g.nodes[0].inputs[1].data
    folds_numerically_equal(g)
    check(g, """
        graph convbn(%x: float32[1,3,6,6]) {
          const %conv_w_bn: float32[4,3,3,3]
          const %conv_b_bn: float32[4] = [-0.5, 1.0, -4.0, 0.0]
          %conv: float32[1,4,6,6] = conv2d(%x, %conv_w_bn, %conv_b_bn) {strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1}
          %relu: float32[1,4,6,6] = relu(%conv)
          return %relu
        }
    """)
    k = np.array([0.5, 2, 2, 0.5], np.float32).reshape(4, 1, 1, 1)
    np.testing.assert_array_equal(g.nodes[0].inputs[1].data, weight * k)


def test_folds_into_existing_bias():
    g = conv_bn(bias=True)
    old_weight = g.nodes[0].inputs[1]
    folds_numerically_equal(g)
    assert [n.op for n in g.nodes] == ["conv2d", "relu"]
    assert old_weight.users == []   # new constants; the originals are left untouched


def test_bn_as_graph_output():
    g = Graph("out")
    x = g.add_input("x", f32(1, 2, 4, 4))
    g.outputs = [batch_norm(g, "bn", conv(g, "conv", x, 3))]
    folds_numerically_equal(g)
    assert [n.op for n in g.nodes] == ["conv2d"] and g.outputs == [g.nodes[0].output]


def test_skips_conv_with_other_readers_or_computed_weights():
    g = Graph("skip")
    x = g.add_input("x", f32(1, 2, 4, 4))
    c = conv(g, "conv", x, 2)
    y = batch_norm(g, "bn", c)
    z = op(g, "z", "add", [y, c])             # %conv is read twice: cannot change it
    w = g.add_input("w", f32(2, 2, 3, 3))
    c2 = op(g, "conv2", "conv2d", [z, w], strides=(1, 1), pads=(1, 1, 1, 1),
            dilations=(1, 1), group=1)
    g.outputs = [batch_norm(g, "bn2", c2)]   # weight is an input, not a constant
    fold_batchnorm(g)
    assert [n.op for n in g.nodes] == ["conv2d", "batch_norm", "add", "conv2d", "batch_norm"]


def test_skips_conv_whose_output_is_a_graph_output():
    g = Graph("both")
    x = g.add_input("x", f32(1, 2, 4, 4))
    c = conv(g, "conv", x, 2)
    g.outputs = [c, batch_norm(g, "bn", c)]
    fold_batchnorm(g)
    assert [n.op for n in g.nodes] == ["conv2d", "batch_norm"]
