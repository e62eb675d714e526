"""Dead-code elimination."""

from kiln.compiler.ir import Graph
from kiln.passes.dce import dce

from pass_helpers import check, f32, op


def test_removes_unread_chains_keeps_outputs_and_their_inputs():
    g = Graph("dce")
    x = g.add_input("x", f32(2, 2))
    a = op(g, "a", "neg", [x])
    dead1 = op(g, "dead1", "exp", [a])
    op(g, "dead2", "add", [dead1, a])   # a dead chain: goes in one sweep
    kept = op(g, "kept", "relu", [a])
    out = op(g, "out", "abs", [kept])
    g.outputs = [out, kept]
    check(dce(g), """
        graph dce(%x: float32[2,2]) {
          %a: float32[2,2] = neg(%x)
          %kept: float32[2,2] = relu(%a)
          %out: float32[2,2] = abs(%kept)
          return %out, %kept
        }
    """)
    assert [u.name for u in a.users] == ["kept"]


def test_everything_dead_when_outputs_are_inputs():
    g = Graph("none")
    x = g.add_input("x", f32(3))
    op(g, "a", "neg", [x])
    g.outputs = [x]
    dce(g)
    assert g.nodes == [] and x.users == []
