"""Dead-code elimination: drop nodes whose results nobody reads."""

from __future__ import annotations

from ..compiler.ir import Graph


def dce(graph: Graph) -> Graph:
    """Work whose result nobody reads is never compiled nor run."""
    outputs = {id(v) for v in graph.outputs}
    for node in reversed(graph.nodes[:]):   # reverse: a dead chain goes in one sweep
        if not any(v.users or id(v) in outputs for v in node.outputs):
            graph.remove(node)
    return graph
