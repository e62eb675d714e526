"""Decomposition of batch_norm into mul + add."""

import numpy as np

from kiln.compiler.ir import Graph
from kiln.passes.decompose import decompose

from pass_helpers import batch_norm, check, f32, op, random_feeds, run


def test_batch_norm_becomes_per_channel_mul_add():
    g = Graph("bn")
    x = g.add_input("x", f32(1, 3, 4, 4))
    r = op(g, "r", "relu", [x])
    y = batch_norm(g, "bn", r, exact=True)
    g.outputs = [op(g, "out", "neg", [y])]
    feeds = random_feeds(g)
    (before,) = run(g, feeds)
    check(decompose(g), """
        graph bn(%x: float32[1,3,4,4]) {
          const %bn_scale: float32[3,1,1] = [[[0.5]], [[2.0]], [[2.0]]]
          const %bn_shift: float32[3,1,1] = [[[-0.5]], [[1.0]], [[-4.0]]]
          %r: float32[1,3,4,4] = relu(%x)
          %bn_mul: float32[1,3,4,4] = mul(%r, %bn_scale)
          %bn_add: float32[1,3,4,4] = add(%bn_mul, %bn_shift)
          %out: float32[1,3,4,4] = neg(%bn_add)
          return %out
        }
    """)
    (after,) = run(g, feeds)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)


def test_rank2_batch_norm_uses_flat_constants():
    g = Graph("bn2")
    x = g.add_input("x", f32(5, 3))
    g.outputs = [batch_norm(g, "bn", x)]
    feeds = random_feeds(g)
    (before,) = run(g, feeds)
    decompose(g)
    assert [n.op for n in g.nodes] == ["mul", "add"]
    assert g.nodes[0].inputs[1].shape == (3,)
    (after,) = run(g, feeds)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
