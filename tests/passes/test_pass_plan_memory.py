"""Memory planning: liveness over groups, greedy best-fit placement, arena vs lower bound."""

import numpy as np

from kiln.compiler.ir import Graph
from kiln.compiler.liveness import live_ranges
from kiln.compiler.verifier import verify
from kiln.passes.fuse import fuse
from kiln.passes.plan_memory import plan_memory

from pass_helpers import check, f32, op


def test_chain_reuses_the_bytes_of_dead_values():
    g = Graph("chain")
    x = g.add_input("x", f32(16))
    a = op(g, "a", "reduce_sum", [x], axes=(0,), keepdims=True)   # 4 bytes, own group
    b = op(g, "b", "expand", [a], shape=(16,))                    # 64 bytes
    c = op(g, "c", "reduce_max", [b], axes=(0,), keepdims=True)
    d = op(g, "d", "expand", [c], shape=(16,))
    g.outputs = [op(g, "e", "reduce_min", [d], axes=(0,), keepdims=True)]
    check(plan_memory(fuse(g)), """
        graph chain(%x: float32[16]) {
          group a (reduce_sum) -> %a {
            %a: float32[1] = reduce_sum(%x) {axes=(0,), keepdims=True}
          }
          group b (expand) -> %b {
            %b: float32[16] = expand(%a) {shape=(16,)}
          }
          group c (reduce_max) -> %c {
            %c: float32[1] = reduce_max(%b) {axes=(0,), keepdims=True}
          }
          group d (expand) -> %d {
            %d: float32[16] = expand(%c) {shape=(16,)}
          }
          group e (reduce_min) -> %e {
            %e: float32[1] = reduce_min(%d) {axes=(0,), keepdims=True}
          }
          return %e
        }
        plan arena=128 lower_bound=68 {
          %a [64, 68) live 0..1
          %b [0, 64) live 1..2
          %c [64, 68) live 2..3
          %d [0, 64) live 3..4
        }
    """)


def test_group_internals_and_graph_outputs_need_no_arena():
    g = Graph("outs")
    x = g.add_input("x", f32(8, 8))
    w = g.constant(np.eye(8, dtype=np.float32), "w")
    mm = op(g, "mm", "matmul", [x, w])
    act = op(g, "act", "relu", [mm])             # in mm's group: no bytes
    s = op(g, "s", "reduce_sum", [act], axes=(1,), keepdims=True)   # graph output...
    t = op(g, "t", "exp", [s])                   # ...read by a later group: caller's buffer
    g.outputs = [s, op(g, "u", "reduce_max", [t], axes=(0,), keepdims=True)]
    plan_memory(fuse(g))
    verify(g)
    assert sorted(r.value.name for r in live_ranges(g)) == ["act", "t"]
    assert set(g.plan.offsets) == {id(act), id(t)}


def test_zero_sized_values_take_no_bytes():
    g = Graph("empty")
    x = g.add_input("x", f32(0, 4))
    a = op(g, "a", "reduce_sum", [x], axes=(0,), keepdims=False)   # [4]
    z = op(g, "z", "expand", [x], shape=(0, 4))
    g.outputs = [op(g, "b", "mul", [z, a])]
    plan_memory(fuse(g))
    verify(g)
    assert g.plan.offset(z) == 0 and g.plan.lower_bound == 16


def random_graph(seed: int, size: int = 40) -> Graph:
    """A random DAG of fusible and non-fusible ops on tensors of varied sizes."""
    rng = np.random.default_rng(seed)
    g = Graph(f"random{seed}")
    values = [g.add_input("x", f32(4, 16))]
    for i in range(size):
        x = values[int(rng.integers(max(0, len(values) - 6), len(values)))]
        choice = rng.integers(4)
        if choice == 0:
            other = values[int(rng.integers(len(values)))]
            y = op(g, f"n{i}", "add", [x, other]) if other.shape == x.shape else \
                op(g, f"n{i}", "relu", [x])
        elif choice == 1 or (choice == 2 and x.shape[1] != 1):
            y = op(g, f"n{i}", "reduce_sum", [x], axes=(1,), keepdims=True)
        elif choice == 2:
            y = op(g, f"n{i}", "expand", [x], shape=(x.shape[0], int(rng.choice([16, 64]))))
        else:
            y = op(g, f"n{i}", "sigmoid", [x])
        values.append(y)
    g.outputs = [values[-1]]
    for node in reversed(g.nodes[:]):
        if not node.output.users and node.output is not values[-1]:
            g.outputs.append(node.output)
    return g


def test_random_graphs_plan_validly_and_near_the_lower_bound():
    ratios = []
    for seed in range(30):
        g = plan_memory(fuse(random_graph(seed)))
        verify(g)   # checks every pair of simultaneously live values for overlap
        assert g.plan.arena_size >= g.plan.lower_bound
        if g.plan.lower_bound:
            ratios.append(g.plan.arena_size / g.plan.lower_bound)
    assert ratios and max(ratios) < 2.0, ratios


def test_plans_per_node_before_fusion():
    g = Graph("unfused")
    x = g.add_input("x", f32(4, 4))
    a = op(g, "a", "neg", [x])
    b = op(g, "b", "relu", [a])
    g.outputs = [op(g, "c", "exp", [b])]
    plan_memory(g)
    verify(g)
    assert g.plan.offset(a) != g.plan.offset(b) and g.plan.arena_size == 128
