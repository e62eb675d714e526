"""The verifier accepts a valid graph and names each broken invariant."""

import numpy as np
import pytest

from kiln.compiler.errors import KilnError
from kiln.compiler.ir import FusedGroup, Graph, MemoryPlan
from kiln.compiler.verifier import VerificationError, verify

from pass_helpers import f32, op


def chain() -> Graph:
    """x -> neg -> relu -> exp, output exp."""
    g = Graph("chain")
    x = g.add_input("x", f32(4, 4))
    a = op(g, "a", "neg", [x])
    b = op(g, "b", "relu", [a])
    c = op(g, "c", "exp", [b])
    g.outputs = [c]
    return g


def broken(g: Graph, match: str) -> None:
    with pytest.raises(VerificationError, match=match):
        verify(g)


def test_valid_graph_passes_and_is_returned():
    g = chain()
    assert verify(g) is g


def test_error_is_internal_not_a_user_error():
    assert not issubclass(VerificationError, KilnError)


def test_nodes_out_of_order():
    g = chain()
    g.nodes[0], g.nodes[1] = g.nodes[1], g.nodes[0]
    broken(g, "reads %a before it is defined")


def test_input_never_defined():
    g = chain()
    g.inputs = []
    broken(g, "reads %x before it is defined")


def test_users_missing_a_slot():
    g = chain()
    b = g.nodes[1]
    b.inputs[0].users.clear()
    broken(g, "lists b 0 time")


def test_users_held_once_per_slot():
    g = Graph("square")
    x = g.add_input("x", f32(3))
    y = op(g, "y", "mul", [x, x])
    g.outputs = [y]
    verify(g)
    x.users.remove(g.nodes[0])
    broken(g, "lists y 1 time.* 2 slot")


def test_stale_user_not_in_graph():
    g = chain()
    g.nodes[0].output.users.append(g.nodes[2])
    broken(g, "lists c 1 time.* 0 slot")


def test_value_produced_twice():
    g = chain()
    a, b, _ = g.nodes
    b.outputs = [a.output]
    broken(g, "defined twice")


def test_wrong_output_type():
    g = chain()
    g.nodes[1].output.type = f32(4, 5)
    broken(g, r"shape rule says float32\[4,4\]")


def test_constant_data_disagrees_with_type():
    g = chain()
    c = g.constant(np.zeros(4, np.float32), "z")
    c.data = np.zeros(4, np.float64)
    g.set_input(g.nodes[1], 0, c)
    broken(g, "constant %z")


def test_graph_output_undefined():
    g = chain()
    last = g.nodes[-1]
    g.remove(last)
    broken(g, "graph output %c is never defined")


def test_groups_must_partition_nodes_in_order():
    g = chain()
    a, b, c = g.nodes
    g.groups = [FusedGroup("a", [a, b]), FusedGroup("c", [c])]
    verify(g)
    g.groups = [FusedGroup("a", [a, c]), FusedGroup("b", [b])]
    broken(g, "groups do not list graph.nodes in order")
    g.groups = [FusedGroup("a", [a])]
    broken(g, "groups do not list")
    g.groups = [FusedGroup("a", [a]), FusedGroup("a", [b, c])]
    broken(g, "group name 'a' is used 2 times")


def test_plan_overlap_of_live_values():
    g = chain()   # steps: a(0) b(1) c(2); %a lives 0..1, %b lives 1..2
    a, b, _ = g.nodes
    g.plan = MemoryPlan({id(a.output): 0, id(b.output): 0}, arena_size=128, lower_bound=128)
    broken(g, "%a and %b are alive together")
    g.plan = MemoryPlan({id(a.output): 64, id(b.output): 0}, arena_size=128, lower_bound=128)
    verify(g)


def test_plan_reuse_of_dead_bytes_is_fine():
    g = Graph("reuse")
    x = g.add_input("x", f32(4, 4))
    a = op(g, "a", "neg", [x])
    b = op(g, "b", "relu", [a])
    c = op(g, "c", "exp", [b])
    d = op(g, "d", "abs", [c])
    g.outputs = [d]
    g.plan = MemoryPlan({id(a): 0, id(b): 64, id(c): 0}, arena_size=128, lower_bound=128)
    verify(g)


def test_plan_missing_misaligned_or_outside():
    g = chain()
    a, b, _ = g.nodes
    g.plan = MemoryPlan({id(a.output): 0}, arena_size=128, lower_bound=64)
    broken(g, "%b needs arena bytes but has no offset")
    g.plan = MemoryPlan({id(a.output): 0, id(b.output): 96}, arena_size=256, lower_bound=64)
    broken(g, "not 64-aligned")
    g.plan = MemoryPlan({id(a.output): 0, id(b.output): 64}, arena_size=100, lower_bound=64)
    broken(g, "outside the arena")


def test_plan_below_lower_bound():
    g = chain()
    a, b, _ = g.nodes
    g.plan = MemoryPlan({id(a.output): 0, id(b.output): 64}, arena_size=128, lower_bound=512)
    broken(g, "below its lower bound")


def test_user_not_in_graph():
    g = chain()
    g.nodes.remove(g.nodes[-1])
    broken(g, "%b lists user c, which is not in the graph")
