"""The run function's side of a loop (compiler/ops/loops.py): the C `for` around the kernels
of a loop's body, opened at its loop_begin and closed at its loop_end; and an If's
`if (cond) { ... } else { ... }` around the kernels of its branches.

    {   int64_t kiln_trip0 = BOUND;               the trip count, clamped to [0, BOUND]
        ... = min(max(*trip, 0), BOUND);          when given at run time
        if (!*cond) kiln_trip0 = 0;               when the first condition is given
        int64_t kiln_it0 = 0;
        for (; kiln_it0 < kiln_trip0; ) {
            *counter = kiln_it0;                  the body reads its iteration here
            ... the body's kernels ...
            ++kiln_it0;
            if (!*cond') break;                   when the body computes a condition
        }
        *count = kiln_it0;                        the iterations run, for what follows
    }

The code is the same for every trip count: only BOUND (the most iterations any buffer holds)
depends on it.
"""

from __future__ import annotations

from ..compiler.ir import Node, Value
from .c_renderer import CRenderer
from .lower import Storage


class LoopControl:
    """The C lines each loop marker stands for, numbering the loops of one run function."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self.renderer = CRenderer()
        self.numbers: dict[str, int] = {}

    def _read(self, value: Value) -> str:
        """`value`'s first element as a C expression."""
        if value.is_constant:
            return str(int(value.data.reshape(-1)[0]))
        ctype = value.dtype.c_type
        buffer = self.storage.buffer(value)
        return f"(*(const {ctype} *)({self.renderer.address(buffer)}))"

    def _write(self, value: Value, expr: str) -> str:
        buffer = self.storage.buffer(value)
        return f"*(int64_t *)({self.renderer.address(buffer)}) = {expr};"

    def lines(self, node: Node) -> list[str]:
        """What `node` (a loop or If marker) adds to the run function."""
        if node.op == "loop_begin":
            return self._open(node)
        if node.op == "loop_end":
            return self._close(node)
        if node.op == "if_begin":
            return [f"if ({self._read(node.inputs[0])}) {{   /* {node.attrs['loop']} */"]
        return ["} else {"] if node.op == "if_else" else ["}"]

    def _open(self, node: Node) -> list[str]:
        k = self.numbers.setdefault(node.attrs["loop"], len(self.numbers))
        trip, it, bound = f"kiln_trip{k}", f"kiln_it{k}", node.attrs["bound"]
        lines = [f"{{   /* loop {node.attrs['loop']}: at most {bound} iterations */",
                 f"    int64_t {trip} = INT64_C({bound});"]
        given = list(node.inputs)
        if node.attrs.get("trip"):
            lines.append(f"    {trip} = kiln_imin(kiln_imax({self._read(given.pop(0))}, 0), "
                         f"{trip});")
        if node.attrs.get("cond"):
            lines.append(f"    if (!{self._read(given.pop(0))}) {trip} = 0;")
        lines += [f"    int64_t {it} = 0;",
                  f"    for (; {it} < {trip}; ) {{",
                  f"    {self._write(node.output, it)}"]
        return lines

    def _close(self, node: Node) -> list[str]:
        k = self.numbers[node.attrs["loop"]]
        it = f"kiln_it{k}"
        lines = [f"    ++{it};"]
        if node.attrs.get("cond"):
            lines.append(f"    if (!{self._read(node.inputs[1])}) break;")
        return lines + ["    }", f"    {self._write(node.output, it)}", "}"]
