"""Loops in the graph: a body imported once, run by the artifact's run function in a C `for`.

A loop is a region of the node list, between a `loop_begin` and the `loop_end` that names the
same loop (attribute `loop`): the run function repeats the kernels of the nodes between them.
Everything a later iteration needs flows through arena values that live over the whole
region, so the region's nodes are ordinary nodes: passes fuse, lay out and plan them as any
others (fusion keeps each group inside one region; liveness keeps what the region reads from
outside alive to its end).

    counter = loop_begin([trip], [cond])   int64 scalar: the iteration, written before each one
    s       = loop_carry(init)             a copy (never folded): a loop-carried state
    acc     = loop_buffer()                a scan output's buffer, [bound, ...] (zeroed)
      ... body nodes, reading s, outer values, counter ...
    s'      = loop_next(s, new)            new written into s's bytes (the value IS s)
    acc'    = loop_write(acc, y, counter)  y written at slice `counter` of acc's `axis`
    count   = loop_end(counter, [cond'], s', acc', ...)   iterations run, after the loop
    out     = loop_result(acc' or s', count)   a copy after the loop; `bounded`: a graph
                                           output whose axis 0 holds `count` rows

An If whose condition is known only at run time is a region the same way, run at most once:

    r       = loop_buffer()                each output's bytes, shared by the branches
    f       = if_begin(cond)               the run function's `if (cond) {`
      ... then branch ...;  r1 = loop_next(r, a)
    g       = if_else(f, r1, ...)          `} else {`
      ... else branch ...;  r2 = loop_next(r, b)
    done    = if_end(g, r2, ...)           `}`
    out     = loop_result(r1, done)

loop_begin's attributes: `bound` (the most iterations; the trip count, when given at run time,
is clamped to it), `trip` and `cond` (whether those inputs are present). loop_end's `cond`:
whether the body's condition follows the counter; the loop stops after an iteration that
leaves it false. Their numpy references cannot say this node by node: the interpreter
(compiler/interpret.py) runs them as the run function does, repeating or skipping the nodes
of a region, and constant folding never evaluates a `loop` op.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..dtypes import DType
from ..ir import Node, TensorType
from .registry import register

#: the ops that open and close a loop's region (no kernel: the run function's `for`) and
#: an If's branches (its `if` / `else`)
MARKERS = ("loop_begin", "loop_end", "if_begin", "if_else", "if_end")


def _refuse(*arrays: Any, **attrs: Any) -> Any:
    raise RuntimeError("a loop op means nothing on its own: compiler/interpret.py runs a "
                       "loop's region as a whole")


def _scalar(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return [TensorType(DType.int64, ())]


def _first(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return [types[0]]


def _buffer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return [TensorType(attrs["dtype"], tuple(attrs["shape"]))]


def _next(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    state, new = types
    if state != new:
        raise ValueError(f"a loop-carried value changes from {state} to {new} in an "
                         f"iteration; Kiln's loops keep every state's type")
    return [state]


def _write(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    acc, value = types[0], types[1]
    axis = attrs["axis"]
    expected = acc.shape[:axis] + acc.shape[axis + 1:]
    if value.dtype != acc.dtype or tuple(value.shape) != tuple(expected):
        raise ValueError(f"a scan output of the loop body is {value}, not the "
                         f"{TensorType(acc.dtype, expected)} of every iteration")
    return [acc]


for _name, _infer in (("loop_begin", _scalar), ("loop_end", _scalar), ("if_begin", _scalar),
                      ("if_else", _scalar), ("if_end", _scalar), ("loop_carry", _first),
                      ("loop_buffer", _buffer), ("loop_next", _next), ("loop_write", _write),
                      ("loop_result", _first)):
    register(_name, "loop", _infer, folds_at_import=False)(_refuse)


def regions(nodes: Sequence[Node]) -> list[tuple[int, int]]:
    """(index of loop_begin, index of its loop_end) of every loop in `nodes`, inner loops
    before the loops around them."""
    found, open_at = [], {}
    for index, node in enumerate(nodes):
        if node.op == "loop_begin":
            open_at[node.attrs["loop"]] = index
        elif node.op == "loop_end":
            found.append((open_at.pop(node.attrs["loop"]), index))
    return found


def innermost_loop(nodes: Sequence[Node]) -> dict[int, str | None]:
    """id(node) -> the loop or If branch that holds it (the innermost), None outside every
    one; the markers belong to the region around them."""
    stack: list[str] = []
    where: dict[int, str | None] = {}
    for node in nodes:
        if node.op in ("loop_end", "if_else", "if_end"):
            stack.pop()
        where[id(node)] = stack[-1] if stack else None
        if node.op in ("loop_begin", "if_begin"):
            stack.append(node.attrs["loop"])
        elif node.op == "if_else":
            stack.append(node.attrs["loop"] + "/else")
    return where
