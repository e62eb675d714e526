"""The graph IR's invariants, checked after every pass in tests and debug runs.

A failure is a bug in Kiln (a pass broke the graph), never a user's mistake, so it raises
VerificationError rather than a KilnError. All problems found are reported at once.
"""

from __future__ import annotations

from collections import Counter

from .errors import KilnError
from .ir import Graph, Node, Value
from .liveness import ALIGNMENT, live_ranges
from .ops import OPS, infer_types


class VerificationError(Exception):
    """The graph breaks an IR invariant: an internal bug, not a user's mistake."""


def verify(graph: Graph) -> Graph:
    """Check every invariant of `graph`; raise VerificationError listing each one broken."""
    problems: list[str] = []
    problems += _check_nodes(graph)
    if graph.groups is not None:
        problems += _check_groups(graph)
    if graph.plan is not None and not problems:
        problems += _check_plan(graph)
    if problems:
        lines = "\n  - ".join(problems)
        raise VerificationError(f"graph '{graph.name}' is invalid ({len(problems)} "
                                f"problem(s)):\n  - {lines}")
    return graph


def _check_nodes(graph: Graph) -> list[str]:
    """Topological order, defined inputs, use-def lists, producers and shape rules."""
    problems: list[str] = []
    node_ids = {id(n) for n in graph.nodes}
    if len(node_ids) != len(graph.nodes):
        problems.append("a node appears more than once in graph.nodes")
    defined: set[int] = set()
    names: dict[str, Value] = {}

    def define(value: Value, where: str) -> None:
        if id(value) in defined:
            problems.append(f"%{value.name} is defined twice (again by {where})")
        defined.add(id(value))
        other = names.setdefault(value.name, value)
        if other is not value:
            problems.append(f"two values are named %{value.name}")

    for value in graph.inputs:
        define(value, "graph input")
        if value.producer is not None or value.is_constant:
            problems.append(f"graph input %{value.name} has a producer or data")
    for value in graph.values():
        if value.is_constant:
            define(value, "constant")
            if value.producer is not None:
                problems.append(f"constant %{value.name} has producer {value.producer.name}")
            if value.data.shape != value.shape or value.data.dtype != value.dtype.numpy:
                problems.append(f"constant %{value.name}: data is {value.data.dtype}"
                                f"{list(value.data.shape)}, type says {value.type}")
    for node in graph.nodes:
        where = f"node {node.name} ({node.op})"
        for value in node.inputs:
            if id(value) not in defined:
                problems.append(f"{where} reads %{value.name} before it is defined")
        for value in node.outputs:
            define(value, where)
            if value.producer is not node:
                problems.append(f"%{value.name}'s producer is not {where}")
        problems += _check_type(node, where)
    problems += _check_users(graph, node_ids)
    for value in graph.outputs:
        if id(value) not in defined:
            problems.append(f"graph output %{value.name} is never defined")
    return problems


def _check_type(node: Node, where: str) -> list[str]:
    if node.op not in OPS:
        return [f"{where}: unknown op '{node.op}'"]
    try:
        expected = infer_types(node.op, [v.type for v in node.inputs], node.attrs)
    except (KilnError, KeyError, TypeError, ValueError, IndexError) as exc:
        return [f"{where}: its shape rule fails ({exc})"]
    actual = [v.type for v in node.outputs]
    if expected != actual:
        return [f"{where}: outputs are {', '.join(map(str, actual))} but the shape rule says "
                f"{', '.join(map(str, expected))}"]
    return []


def _check_users(graph: Graph, node_ids: set[int]) -> list[str]:
    """`users` holds each reading node once per input slot, and only nodes in the graph."""
    problems = []
    reads: dict[int, Counter] = {}
    nodes = {id(n): n for n in graph.nodes}
    for node in graph.nodes:
        for value in node.inputs:
            reads.setdefault(id(value), Counter())[id(node)] += 1
    for value in graph.values():
        held = Counter(id(u) for u in value.users)
        slots = reads.get(id(value), Counter())
        for user in value.users:
            if id(user) not in node_ids:
                problems.append(f"%{value.name} lists user {user.name}, which is not in the "
                                f"graph")
                nodes.setdefault(id(user), user)
        for key in sorted(set(held) | set(slots), key=lambda k: nodes[k].name):
            if held[key] != slots[key]:
                problems.append(f"%{value.name} lists {nodes[key].name} {held[key]} time(s) "
                                f"but it reads it through {slots[key]} slot(s)")
        producer = value.producer
        if producer is not None and id(producer) not in node_ids:
            problems.append(f"%{value.name}'s producer {producer.name} is not in the graph")
    return problems


def _check_groups(graph: Graph) -> list[str]:
    """Groups partition graph.nodes in order, each one a contiguous run of nodes."""
    problems = []
    flat = [n for g in graph.groups for n in g.nodes]
    if any(not g.nodes for g in graph.groups):
        problems.append("a group has no nodes")
    if len(flat) != len(graph.nodes) or any(a is not b for a, b in zip(flat, graph.nodes)):
        problems.append("groups do not list graph.nodes in order (each node in exactly one "
                        "group, each group's nodes contiguous)")
    names = Counter(g.name for g in graph.groups)
    problems += [f"group name '{name}' is used {count} times"
                 for name, count in names.items() if count > 1]
    return problems


def _check_plan(graph: Graph) -> list[str]:
    """Every arena value is placed, aligned, inside the arena, and never overlaps a value
    that is alive at the same time."""
    plan = graph.plan
    problems = []
    ranges = live_ranges(graph)
    placed = []
    for r in ranges:
        offset = plan.offsets.get(id(r.value))
        if offset is None:
            problems.append(f"%{r.value.name} needs arena bytes but has no offset")
            continue
        if offset % ALIGNMENT:
            problems.append(f"%{r.value.name} is at offset {offset}, not {ALIGNMENT}-aligned")
        if offset < 0 or offset + r.nbytes > plan.arena_size:
            problems.append(f"%{r.value.name} [{offset}, {offset + r.nbytes}) lies outside "
                            f"the arena of {plan.arena_size} bytes")
        placed.append((offset, r))
    placed.sort(key=lambda item: item[0])
    for i, (offset, r) in enumerate(placed):
        for other_offset, other in placed[i + 1:]:
            if other_offset >= offset + r.nbytes:
                break
            if r.nbytes and other.nbytes and r.overlaps(other):
                problems.append(f"%{r.value.name} and %{other.value.name} are alive together "
                                f"(steps {r.start}..{r.end} and {other.start}..{other.end}) "
                                f"but share arena bytes")
    if plan.lower_bound > plan.arena_size:
        problems.append(f"the arena ({plan.arena_size} bytes) is below its lower bound "
                        f"({plan.lower_bound} bytes)")
    return problems
