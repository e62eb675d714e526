"""Dead-code elimination: drop nodes whose results nobody reads."""

from __future__ import annotations

from ..compiler.ir import Graph


def dce(graph: Graph) -> Graph:
    """Remove nodes none of whose outputs is read or is a graph output (codegen skips work)."""
    outputs = {id(v) for v in graph.outputs}
    for node in reversed(graph.nodes[:]):   # reverse: a dead chain goes in one sweep
        if not any(v.users or id(v) in outputs for v in node.outputs):
            graph.remove(node)
    return graph
