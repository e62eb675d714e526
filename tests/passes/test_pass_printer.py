"""The IR printer: the text form pass tests compare."""

import numpy as np

from kiln.compiler.dtypes import DType
from kiln.compiler.ir import FusedGroup, Graph, MemoryPlan

from pass_helpers import CONV_ATTRS, check, f32, op


def small_graph() -> Graph:
    g = Graph("tiny")
    x = g.add_input("x", f32(1, 3, 4, 4))
    w = g.constant(np.ones((2, 3, 3, 3), np.float32), "w")
    b = g.constant(np.array([0.5, -1.25], np.float32), "b")
    c = op(g, "conv", "conv2d", [x, w, b], **CONV_ATTRS)
    r = op(g, "act", "clip", [c], min=0.0, max=6.0)
    i = op(g, "toint", "cast", [r], to=DType.int32)
    g.outputs = [r, i]
    return g


def test_prints_inputs_constants_nodes_and_outputs():
    check(small_graph(), """
        graph tiny(%x: float32[1,3,4,4]) {
          const %w: float32[2,3,3,3]
          const %b: float32[2] = [0.5, -1.25]
          %conv: float32[1,2,4,4] = conv2d(%x, %w, %b) {strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1}
          %act: float32[1,2,4,4] = clip(%conv) {min=0.0, max=6.0}
          %toint: int32[1,2,4,4] = cast(%act) {to=int32}
          return %act, %toint
        }
    """)


def test_node_name_differing_from_output_is_a_comment():
    g = Graph("named")
    x = g.add_input("x", f32(2))
    node = g.add_node("neg", [x], [f32(2)], name="/layer/Neg", out_names=["y"])
    g.outputs = [node.output]
    check(g, """
        graph named(%x: float32[2]) {
          %y: float32[2] = neg(%x)  # /layer/Neg
          return %y
        }
    """)


def test_prints_groups_and_plan():
    g = small_graph()
    conv, act, cast = g.nodes
    g.outputs = [cast.output]
    g.groups = [FusedGroup("conv", [conv, act]), FusedGroup("toint", [cast])]
    g.plan = MemoryPlan({id(act.output): 0}, arena_size=128, lower_bound=128)
    check(g, """
        graph tiny(%x: float32[1,3,4,4]) {
          const %w: float32[2,3,3,3]
          const %b: float32[2] = [0.5, -1.25]
          group conv (conv2d+clip) -> %act {
            %conv: float32[1,2,4,4] = conv2d(%x, %w, %b) {strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1}
            %act: float32[1,2,4,4] = clip(%conv) {min=0.0, max=6.0}
          }
          group toint (cast) -> %toint {
            %toint: int32[1,2,4,4] = cast(%act) {to=int32}
          }
          return %toint
        }
        plan arena=128 lower_bound=128 {
          %act [0, 128) live 0..1
        }
    """)
