"""The committed list of passing node tests (conformance/passing.txt): one name a line,
sorted, written from a full run; a listed test that no longer passes is a regression.

    python -m kiln.conformance --write-passing conformance/passing.txt
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .runner import Outcome

#: The list in the source tree, beside this module.
PASSING_FILE = Path(__file__).resolve().parent / "passing.txt"


def read_passing(path: str | Path = PASSING_FILE) -> list[str]:
    """The test names listed in `path` (blank lines and # comments ignored)."""
    lines = Path(path).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def write_passing(outcomes: Sequence[Outcome], path: str | Path = PASSING_FILE) -> int:
    """Write the sorted names of the passing outcomes to `path`; returns how many."""
    names = sorted(o.name for o in outcomes if o.status == "pass")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(f"{name}\n" for name in names))
    return len(names)


def compare_passing(outcomes: Sequence[Outcome], listed: Sequence[str]
                    ) -> tuple[list[Outcome], list[Outcome]]:
    """(regressed, new): the outcomes of listed tests that did not pass, and the passing
    outcomes of tests the list lacks. Listed tests that did not run are not judged."""
    listed_set = set(listed)
    regressed = [o for o in outcomes if o.name in listed_set and o.status != "pass"]
    new = [o for o in outcomes if o.name not in listed_set and o.status == "pass"]
    return regressed, new
