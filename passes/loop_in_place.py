"""Loop-carried states and scan outputs are written in place (compiler/ops/loops.py).

`loop_next(s, new)` writes the next state into the bytes of `s`, and `loop_write(acc, y, t)`
writes iteration t's slice into the bytes of `acc`: each group writes into its first input
(FusedGroup.into = (that value, 0)), so the next iteration, and the code after the loop,
read the state or the stacked outputs where they already are. Runs after fusion.
"""

from __future__ import annotations

from ..compiler.ir import Graph


def loop_in_place(graph: Graph) -> Graph:
    """States and scan outputs need no copy between iterations."""
    for group in graph.groups or []:
        if group.anchor.op in ("loop_next", "loop_write"):
            group.into = (group.anchor.inputs[0], 0)
    return graph
