"""Building candidates and measuring them in a worker process.

One measurement builds the model with a set of candidate schedules (one per signature,
every other group on its default) and hands the artifact, with the default artifact, to
`python -m kiln.tune.worker` under a time limit. Whatever the candidate does (a build
error, a crash, a hang, a wrong answer), the tuner gets an Outcome back and carries on.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..compiler.errors import KilnError
from ..driver import compile_detailed


@dataclass
class Outcome:
    """What one measurement gave: status ("ok" or one of tuning_records.FAILURES), why
    not, and for "ok" the seconds of every group in each repeat, under the candidate and
    the default, and the spread of the whole model's ratio over the last repeats."""

    status: str
    reason: str = ""
    groups: list[str] = field(default_factory=list)
    candidate: list[list[float]] = field(default_factory=list)   # [repeat][group]
    default: list[list[float]] = field(default_factory=list)
    noise: float = 0.0

    def seconds(self, groups: Sequence[str]) -> tuple[float, float, float, float]:
        """For the groups `groups`: median seconds under the candidate and the default,
        the median over repeats of their ratio, and that ratio's relative spread (the
        interquartile range over the median)."""
        index = [self.groups.index(g) for g in groups if g in self.groups]
        if not index:
            return 0.0, 0.0, 0.0, 0.0
        cand = np.array(self.candidate)[:, index].sum(axis=1)
        default = np.array(self.default)[:, index].sum(axis=1)
        ratios = cand / np.maximum(default, 1e-12)
        low, middle, high = np.percentile(ratios, [25, 50, 75])
        return (float(np.median(cand)), float(np.median(default)), float(middle),
                float((high - low) / max(middle, 1e-12)))

    def per_group(self) -> dict[str, float]:
        """Median seconds of each group under the default."""
        return dict(zip(self.groups, np.median(np.array(self.default), axis=0).tolist()))


@dataclass
class Build:
    """How the tuner builds the model: compile_detailed's arguments but the schedule."""

    model: Any
    target: str
    dims: Mapping[str, int] | None
    shapes: Mapping[str, Sequence[int]] | None
    consts: Mapping[str, Any] | None
    cpu: str | None
    threads: int

    def artifact(self, path: Path, lines: Sequence[dict[str, Any]] = ()) -> None:
        """Build the model at `path`, with the schedule lines `lines` replayed."""
        schedule = None
        if lines:
            schedule = path.with_suffix(".schedule.jsonl")
            schedule.write_text("".join(json.dumps(line) + "\n" for line in lines))
        compile_detailed(self.model, self.target, path, self.dims, self.shapes,
                         consts=self.consts, cpu=self.cpu, threads_max=self.threads,
                         schedule=schedule)


class Measurer:
    """Builds and measures candidates in a scratch folder, against one default artifact."""

    def __init__(self, build: Build, workdir: Path, feed: Mapping[str, np.ndarray],
                 default: Path, run_seconds: float, tolerance: float = 1e-3):
        self.build = build
        self.workdir = workdir
        self.feed_path = workdir / "feed.npz"
        np.savez(self.feed_path, **feed)
        self.default = default
        self.tolerance = tolerance
        self.calibrate(run_seconds)
        self.count = 0

    def calibrate(self, run_seconds: float) -> None:
        """Size the bursts and the time limit from one default run's time."""
        self.runs = int(min(50, max(3, np.ceil(0.05 / max(run_seconds, 1e-6)))))
        expected = 2 * 8 * (self.runs + 2) * run_seconds
        self.limit = 30.0 + 10 * expected

    def measure(self, lines: Sequence[dict[str, Any]]) -> Outcome:
        """Build with `lines` (none: the default schedules) and measure against the default."""
        self.count += 1
        artifact = self.workdir / f"candidate{self.count}.so"
        try:
            self.build.artifact(artifact, lines)
        except KilnError as error:
            return Outcome("failed", f"it did not build: {error}")
        except Exception as error:   # a lowering that breaks on a schedule: not fatal here
            return Outcome("failed", f"it did not build: {type(error).__name__}: {error}")
        try:
            return self.run_worker(artifact)
        finally:
            for stale in self.workdir.glob(f"candidate{self.count}.*"):
                stale.unlink(missing_ok=True)

    def run_worker(self, artifact: Path) -> Outcome:
        """Measure a built artifact in a fresh worker process."""
        job = {"default": str(self.default), "candidate": str(artifact),
               "feed": str(self.feed_path), "threads": self.build.threads, "runs": self.runs,
               "repeats": 8, "seconds": 4.0, "tolerance": self.tolerance}
        with tempfile.TemporaryDirectory(dir=self.workdir) as scratch:
            job_path, result_path = Path(scratch) / "job.json", Path(scratch) / "result.json"
            job_path.write_text(json.dumps(job))
            try:
                done = subprocess.run([sys.executable, "-m", "kiln.tune.worker", str(job_path),
                                       str(result_path)], capture_output=True, text=True,
                                      timeout=self.limit)
            except subprocess.TimeoutExpired:
                return Outcome("hung", f"it ran past the {self.limit:.0f} s limit")
            if done.returncode < 0:
                name = signal.Signals(-done.returncode).name
                return Outcome("crashed", f"the worker died of {name}")
            if done.returncode != 0 or not result_path.exists():
                tail = (done.stderr.strip().splitlines() or ["no message"])[-1]
                return Outcome("failed", f"the worker failed: {tail}")
            result = json.loads(result_path.read_text())
        if result["status"] != "ok":
            return Outcome(result["status"], result["reason"])
        return Outcome("ok", groups=result["groups"], candidate=result["candidate"],
                       default=result["default"], noise=result["noise"])
