"""Time per fused group of a loaded artifact (`kiln run OUT.so --profile`).

The generated run function wraps every kernel launch in KILN_LAUNCH: while a session's
profiling is on, the runtime adds each launch's wall time to its group's counter.
"""

from __future__ import annotations

import ctypes
from typing import Mapping

import numpy as np

from ..compiler.errors import ArtifactError
from .loader import Session


def profile(session: Session, feed: Mapping[str, np.ndarray], runs: int = 10
            ) -> list[tuple[str, float]]:
    """(group name, mean seconds per run) for each fused group, in run order."""
    if not isinstance(session, Session):
        raise ArtifactError("--profile needs the artifact loaded in this process; it is not "
                            "available under an emulator")
    lib, prefix = session._lib["_cdll"], session.prefix
    if not hasattr(lib, prefix + "profile_groups"):
        raise ArtifactError(f"{session.path} was built without profiling hooks; compile it "
                            "again with this version of Kiln")
    groups = getattr(lib, prefix + "profile_groups")
    groups.restype = ctypes.c_int32
    name_of = getattr(lib, prefix + "profile_group_name")
    name_of.restype, name_of.argtypes = ctypes.c_char_p, [ctypes.c_int32]
    enable = getattr(lib, prefix + "session_set_profiling")
    enable.restype, enable.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_int32]
    read = getattr(lib, prefix + "session_profile")
    read.restype, read.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p]
    count = groups()
    seconds = np.zeros(max(count, 1), np.float64)
    session.run(feed)                                   # warm-up, not counted
    session._check(enable(session._handle, 1), "enabling profiling")
    try:
        for _ in range(max(runs, 1)):
            session.run(feed)
        session._check(read(session._handle, seconds.ctypes.data), "reading the profile")
    finally:
        enable(session._handle, 0)
    return [(name_of(i).decode("utf-8", "replace"), float(seconds[i]) / max(runs, 1))
            for i in range(count)]


def format_profile(rows: list[tuple[str, float]], top: int | None = None) -> str:
    """A table of groups by time, largest first, with each one's share of the total."""
    total = sum(t for _, t in rows) or 1.0
    ordered = sorted(rows, key=lambda r: -r[1])[:top]
    width = max((len(n) for n, _ in ordered), default=5)
    lines = [f"{'group':<{width}}  {'ms':>9}  {'share':>6}"]
    lines += [f"{name:<{width}}  {t * 1e3:9.3f}  {100 * t / total:5.1f}%" for name, t in ordered]
    lines.append(f"{'total':<{width}}  {total * 1e3:9.3f}  100.0%")
    return "\n".join(lines)
