"""The search space of one kernel signature: the kernels that may run it and the values
each of their schedule fields may take.

A field's values come from its declared range (codegen/schedules.py): every integer of a
narrow range (register tile rows, vectors, Winograd's tile edge), and for a wide one
(bytes, element counts, task counts) the powers of two within 1/16 to 16 times the
default, beside the default itself. A candidate is a kernel and one value per field;
`fits` is the kernel's own check that a schedule suits every group it would run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..codegen.kernels.registry import KERNELS
from ..codegen.schedules import KernelTarget, as_dict, fields
from ..compiler.ir import FusedGroup

#: A range at most this wide is searched value by value.
NARROW = 32
#: Wide ranges: powers of two from default / SPAN to default * SPAN.
SPAN = 16


@dataclass(frozen=True)
class Candidate:
    """One point of the space: a kernel and its schedule's field values, in field order."""

    kernel: str
    values: tuple[tuple[str, int], ...]

    @property
    def schedule(self) -> dict[str, int]:
        return dict(self.values)

    def build(self) -> Any:
        """The schedule dataclass."""
        return KERNELS[self.kernel].schedule(**self.schedule)


def field_values(low: int, high: int, default: int) -> list[int]:
    """The values searched for a field of range [low, high] whose default is `default`."""
    if high - low <= NARROW:
        return list(range(low, high + 1))
    values = {default}
    power = 1
    while power <= high:
        if low <= power <= high and default / SPAN <= power <= default * SPAN:
            values.add(power)
        power *= 2
    return sorted(values)


class Space:
    """The kernels and field values one signature's search may take."""

    def __init__(self, groups: Mapping[str, Sequence[FusedGroup]], target: KernelTarget):
        """`groups`: kernel -> the signature's groups as that kernel would run them (the
        chosen kernel first); one that changes the graph sees them changed."""
        self.groups = {name: list(members) for name, members in groups.items()}
        self.target = target
        self.axes: dict[str, list[tuple[str, list[int]]]] = {}
        self.defaults: dict[str, Candidate] = {}
        for name, members in self.groups.items():
            kernel = KERNELS[name]
            default = as_dict(kernel.default(members[0], target))
            self.axes[name] = [(field, field_values(low, high, default[field]))
                               for field, (low, high), _ in fields(kernel.schedule)]
            self.defaults[name] = Candidate(name, tuple(default.items()))
        chosen = KERNELS[self.kernels[0]]
        #: kernels decided before the layout passes whose layout or padding differs from the
        #: chosen one's: choosing them changes the graph (a padded copy of the input appears
        #: or goes), so their time is the whole model's change, measured one at a time
        self.reshaping = {name for name in self.kernels
                          if KERNELS[name].stage == "layout"
                          and (KERNELS[name].layout, KERNELS[name].padded_input)
                          != (chosen.layout, chosen.padded_input)}

    @property
    def kernels(self) -> list[str]:
        return list(self.axes)

    def size(self) -> int:
        """How many candidates there are, before `fits` removes some."""
        total = 0
        for axes in self.axes.values():
            count = 1
            for _, values in axes:
                count *= len(values)
            total += count
        return total

    def fits(self, candidate: Candidate) -> bool:
        """Whether the kernel takes this schedule for every group of the signature."""
        kernel = KERNELS[candidate.kernel]
        try:
            schedule = candidate.build()
        except (TypeError, ValueError):
            return False
        return all(kernel.fits(group, self.target, schedule) is None
                   for group in self.groups[candidate.kernel])

    def random(self, rng: random.Random) -> Candidate:
        """A candidate drawn uniformly, field by field, of a kernel drawn uniformly."""
        name = rng.choice(self.kernels)
        return Candidate(name, tuple((field, rng.choice(values))
                                     for field, values in self.axes[name]))

    def neighbours(self, candidate: Candidate) -> list[Candidate]:
        """Each candidate one step away: one field moved to the next value up or down, or
        the default schedule of another kernel."""
        result = []
        values = candidate.schedule
        for field, axis in self.axes[candidate.kernel]:
            at = axis.index(values[field]) if values[field] in axis else None
            if at is None:
                continue
            for step in (-1, 1):
                if 0 <= at + step < len(axis):
                    moved = dict(values, **{field: axis[at + step]})
                    result.append(Candidate(candidate.kernel, tuple(moved.items())))
        result += [d for name, d in self.defaults.items() if name != candidate.kernel]
        return result

    def crossover(self, a: Candidate, b: Candidate, rng: random.Random) -> Candidate:
        """Each field from one parent or the other (parents of one kernel), else `a`."""
        if a.kernel != b.kernel:
            return a
        other = b.schedule
        return Candidate(a.kernel, tuple((field, value if rng.random() < 0.5 else other[field])
                                         for field, value in a.values))
