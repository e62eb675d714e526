"""Constant folding, shape folding, identity removal and output materialization."""

import numpy as np

from kiln.compiler.ir import Graph
from kiln.passes.fold_constants import fold_constants

from pass_helpers import check, f32, op, random_feeds, run


def test_folds_constant_subgraph_and_shape():
    g = Graph("fold")
    x = g.add_input("x", f32(2, 3))
    two = g.constant(np.float32(2.0), "two")
    three = g.constant(np.float32(3.0), "three")
    six = op(g, "six", "mul", [two, three])
    y = op(g, "y", "add", [x, six])
    shape = op(g, "shp", "shape", [y])       # static: folds although %y is computed
    n = op(g, "n", "reduce_prod", [shape], axes=(0,), keepdims=False)
    g.outputs = [y, n]
    feeds = random_feeds(g)
    before = run(g, feeds)
    check(fold_constants(g), """
        graph fold(%x: float32[2,3]) {
          const %six: float32[] = 6.0
          const %n: int64[] = 6
          %y: float32[2,3] = add(%x, %six)
          %n_copy: int64[] = identity(%n)
          return %y, %n_copy
        }
    """)
    for a, b in zip(before, run(g, feeds)):
        np.testing.assert_array_equal(a, b)


def test_drops_identities():
    g = Graph("ids")
    x = g.add_input("x", f32(4))
    a = op(g, "a", "identity", [x])
    b = op(g, "b", "neg", [a])
    c = op(g, "c", "identity", [b])
    g.outputs = [c]
    check(fold_constants(g), """
        graph ids(%x: float32[4]) {
          %b: float32[4] = neg(%x)
          return %b
        }
    """)


def test_keeps_identities_that_copy_into_output_buffers():
    g = Graph("copies")
    x = g.add_input("x", f32(4))
    a = op(g, "a", "identity", [x])          # output = input: needs the copy
    b = op(g, "b", "neg", [x])
    c = op(g, "c", "identity", [b])          # %b is an output too: needs the copy
    g.outputs = [a, b, c]
    check(fold_constants(g), """
        graph copies(%x: float32[4]) {
          %a: float32[4] = identity(%x)
          %b: float32[4] = neg(%x)
          %c: float32[4] = identity(%b)
          return %a, %b, %c
        }
    """)


def test_outputs_that_are_inputs_or_repeated_get_copies():
    g = Graph("outs")
    x = g.add_input("x", f32(4))
    y = op(g, "y", "neg", [x])
    g.outputs = [x, y, y]
    check(fold_constants(g), """
        graph outs(%x: float32[4]) {
          %y: float32[4] = neg(%x)
          %x_copy: float32[4] = identity(%x)
          %y_copy: float32[4] = identity(%y)
          return %x_copy, %y, %y_copy
        }
    """)


def test_does_not_fold_a_constant_into_a_huge_one():
    g = Graph("huge")
    x = g.add_input("x", f32(1, 1))
    one = g.constant(np.float32(1.0), "one")
    big = op(g, "big", "expand", [one], shape=(1024, 1024))
    y = op(g, "y", "mul", [x, big])
    g.outputs = [y]
    fold_constants(g)
    assert [n.op for n in g.nodes] == ["expand", "mul"]
