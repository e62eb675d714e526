"""The measurement worker: `python -m kiln.tune.worker JOB.json RESULT.json`.

It runs in a process of its own, so a candidate that crashes or hangs takes only the
worker with it (measure.py reads that from its exit). It loads the default artifact and a
candidate built from the same model, runs both on one feed, and compares the candidate's
outputs with the default's; then it profiles the two in turn, a burst of runs each, until
the candidate's time relative to the default is steady (or the repeats run out), and
writes every group's time under both in each repeat, and the spread of the last repeats'
ratios, as JSON.

The job names its files relative to its own folder. `kiln tune --ssh HOST` copies them
to HOST and runs this same command there (docs/tuning.md).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ..runtime import load
from ..runtime.profile import profile
from ..targets.host_cpu import host_cpu

#: The relative spread of the last repeats' ratios that counts as steady.
STEADY = 0.02


def measure(job: dict, folder: Path) -> dict:
    """The result of one job (see the module docstring); its files are in `folder`."""
    feed = dict(np.load(folder / job["feed"]))
    threads = job["threads"]
    with load(folder / job["default"], threads=threads) as default, \
            load(folder / job["candidate"], threads=threads) as candidate:
        expected, got = default.run(feed), candidate.run(feed)
        for name, want in expected.items():
            have = got[name]
            scale = float(np.max(np.abs(want))) if want.size else 0.0
            error = float(np.max(np.abs(have.astype(np.float64) - want))) if want.size else 0.0
            if have.shape != want.shape or not np.isfinite(error) \
                    or error > job["tolerance"] * max(scale, 1e-6):
                return {"status": "wrong", "reason": f"output '{name}' differs from the "
                        f"default schedule's by {error:.3g} (its scale: {scale:.3g})"}
        runs, deadline = job["runs"], time.monotonic() + job["seconds"]
        times: dict[str, list[list[float]]] = {"default": [], "candidate": []}
        ratios: list[float] = []
        for repeat in range(job["repeats"]):
            for side, session in (("default", default), ("candidate", candidate)):
                times[side].append([t for _, t in profile(session, feed, runs)])
            ratios.append(sum(times["candidate"][-1]) / max(sum(times["default"][-1]), 1e-12))
            last = ratios[-3:]
            if (repeat >= 2 and (max(last) - min(last)) / np.median(last) < STEADY) \
                    or time.monotonic() > deadline:
                break
        names = [name for name, _ in profile(default, feed, 1)]
        candidate_names = [name for name, _ in profile(candidate, feed, 1)]
    spread = (max(ratios[-3:]) - min(ratios[-3:])) / float(np.median(ratios[-3:]))
    return {"status": "ok", "groups": names, "candidate_groups": candidate_names,
            "default": times["default"],
            "candidate": times["candidate"], "noise": spread, "repeats": len(ratios),
            "machine": host_cpu()}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m kiln.tune.worker JOB.json RESULT.json", file=sys.stderr)
        return 2
    job_path = Path(argv[0])
    result = measure(json.loads(job_path.read_text()), job_path.parent)
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
