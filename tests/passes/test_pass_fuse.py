"""Fusion into groups: anchors with elementwise epilogues, elementwise chains, singletons."""

import numpy as np

from kiln.compiler.dtypes import DType
from kiln.compiler.ir import Graph, TensorType
from kiln.passes.fuse import fuse

from pass_helpers import check, conv, f32, op, random_feeds, run


def test_residual_block_fuses_and_moves_the_shortcut_conv_first():
    g = Graph("block")
    x = g.add_input("x", f32(1, 4, 8, 8))
    r1 = op(g, "relu1", "relu", [conv(g, "conv1", x, 4, bias=False)])
    c2 = conv(g, "conv2", r1, 4, bias=False, seed=2)
    bias = g.constant(np.array([1, 2, 3, 4], np.float32).reshape(4, 1, 1), "bias2")
    b2 = op(g, "bias_add", "add", [c2, bias])
    shortcut = conv(g, "shortcut", x, 4, bias=False, seed=3)   # exported after conv2
    res = op(g, "residual", "add", [b2, shortcut])
    g.outputs = [op(g, "out", "relu", [res])]
    feeds = random_feeds(g)
    (before,) = run(g, feeds)
    check(fuse(g), """
        graph block(%x: float32[1,4,8,8]) {
          const %conv1_w: float32[4,4,3,3]
          const %shortcut_w: float32[4,4,3,3]
          const %conv2_w: float32[4,4,3,3]
          const %bias2: float32[4,1,1] = [[[1.0]], [[2.0]], [[3.0]], [[4.0]]]
          group conv1 (conv2d+relu) -> %relu1 {
            %conv1: float32[1,4,8,8] = conv2d(%x, %conv1_w) {strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1}
            %relu1: float32[1,4,8,8] = relu(%conv1)
          }
          group shortcut (conv2d) -> %shortcut {
            %shortcut: float32[1,4,8,8] = conv2d(%x, %shortcut_w) {strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1}
          }
          group conv2 (conv2d+add+add+relu) -> %out {
            %conv2: float32[1,4,8,8] = conv2d(%relu1, %conv2_w) {strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1}
            %bias_add: float32[1,4,8,8] = add(%conv2, %bias2)
            %residual: float32[1,4,8,8] = add(%bias_add, %shortcut)
            %out: float32[1,4,8,8] = relu(%residual)
          }
          return %out
        }
    """)
    (after,) = run(g, feeds)
    np.testing.assert_array_equal(after, before)


def test_elementwise_chains_and_shape_growth():
    g = Graph("ew")
    x = g.add_input("x", f32(2, 3))
    y = g.add_input("y", f32(3))
    s = op(g, "sub", "sub", [x, y])                  # broadcasts its inputs: fine
    e = op(g, "exp", "exp", [s])
    gt = op(g, "gt", "greater", [e, g.constant(np.float32(1.0), "one")])
    f = op(g, "f", "cast", [gt], to=DType.float32)   # dtype changes in a chain: fine
    m = op(g, "m", "reduce_sum", [f], axes=(1,), keepdims=True)
    n = op(g, "n", "neg", [m])                       # the reduction takes it as its epilogue
    grown = op(g, "grown", "mul", [n, x])            # [2,1] -> [2,3]: a new group
    g.outputs = [op(g, "z", "sqrt", [grown])]
    check(fuse(g), """
        graph ew(%x: float32[2,3], %y: float32[3]) {
          const %one: float32[] = 1.0
          group sub (sub+exp+greater+cast) -> %f {
            %sub: float32[2,3] = sub(%x, %y)
            %exp: float32[2,3] = exp(%sub)
            %gt: bool[2,3] = greater(%exp, %one)
            %f: float32[2,3] = cast(%gt) {to=float32}
          }
          group m (reduce_sum+neg) -> %n {
            %m: float32[2,1] = reduce_sum(%f) {axes=(1,), keepdims=True}
            %n: float32[2,1] = neg(%m)
          }
          group grown (mul+sqrt) -> %z {
            %grown: float32[2,3] = mul(%n, %x)
            %z: float32[2,3] = sqrt(%grown)
          }
          return %z
        }
    """)


def test_chain_stops_at_shared_values_outputs_and_dtype_changes():
    g = Graph("stops")
    a = g.add_input("a", f32(4, 8))
    b = g.constant(np.zeros((8, 8), np.float32), "b")
    mm = op(g, "mm", "matmul", [a, b])
    biased = op(g, "biased", "add", [mm, g.constant(np.ones(8, np.float32), "bias")])
    act = op(g, "act", "relu", [biased])           # %biased is a graph output: stop before
    twice = op(g, "twice", "add", [act, act])      # one reader through two slots: fuses on
    half = op(g, "half", "cast", [twice], to=DType.float16)
    mm2 = op(g, "mm2", "matmul", [a, b])
    h2 = op(g, "h2", "cast", [mm2], to=DType.float16)   # anchor dtype changes: stop
    s1 = op(g, "s1", "exp", [h2])
    s2 = op(g, "s2", "neg", [h2])                       # %h2 has two readers: stop
    g.outputs = [biased, half, s1, s2]
    fuse(g)
    assert [[n.name for n in grp.nodes] for grp in g.groups] == [
        ["mm", "biased"], ["act", "twice", "half"], ["mm2"], ["h2"], ["s1"], ["s2"]]
    assert g.groups[0].outputs(g) == [biased]


def test_group_names_are_c_identifiers_and_unique():
    g = Graph("names")
    x = g.add_input("x", f32(2))
    a = g.add_node("neg", [x], [f32(2)], name="/layer1/Neg").output
    b = g.add_node("softmax", [a], [f32(2)], {"axis": 0}, name="layer1.Neg").output
    c = g.add_node("neg", [b], [f32(2)], name="0").output
    g.outputs = [c]
    fuse(g)
    assert [grp.name for grp in g.groups] == ["layer1_Neg", "layer1_Neg_2", "g_0"]
    g.nodes[-1].name = "\u00e9t\u00e9"   # a non-ASCII name is no C identifier
    assert fuse(g).groups[-1].name == "t"


def test_every_node_in_one_group_for_non_fusible_ops():
    g = Graph("single")
    x = g.add_input("x", f32(1, 2, 4, 4))
    p = op(g, "pool", "max_pool2d", [x], kernel=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0))
    t = op(g, "t", "transpose", [p], perm=(0, 2, 3, 1))
    g.outputs = [op(g, "sm", "softmax", [t], axis=3)]
    fuse(g)
    assert [len(grp.nodes) for grp in g.groups] == [1, 1, 1]
    assert g.groups[0].outputs(g)[0].type == TensorType(DType.float32, (1, 2, 2, 2))
