"""Building candidates and measuring them in a worker process.

One measurement builds the model with a set of candidate schedules (one per signature,
every other group on its default) and hands the artifact, with the default artifact, to
`python -m kiln.tune.worker` under a time limit. Whatever the candidate does (a build
error, a crash, a hang, a wrong answer), the tuner gets an Outcome back and carries on.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import tempfile
import uuid
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
    groups: list[str] = field(default_factory=list)             # the default's groups
    candidate_groups: list[str] = field(default_factory=list)   # the candidate's
    candidate: list[list[float]] = field(default_factory=list)   # [repeat][group]
    default: list[list[float]] = field(default_factory=list)
    noise: float = 0.0
    machine: str = ""            # the CPU the worker ran on (targets/host_cpu.py)

    def seconds(self, groups: Sequence[str]) -> tuple[float, float, float, float]:
        """For the groups `groups`: median seconds under the candidate and the default,
        the median over repeats of their ratio, and that ratio's relative spread (the
        interquartile range over the median)."""
        index = [self.groups.index(g) for g in groups if g in self.groups]
        theirs = [self.candidate_groups.index(g) for g in groups if g in self.candidate_groups]
        if not index or not theirs:
            return 0.0, 0.0, 0.0, 0.0
        cand = np.array(self.candidate)[:, theirs].sum(axis=1)
        default = np.array(self.default)[:, index].sum(axis=1)
        ratios = cand / np.maximum(default, 1e-12)
        low, middle, high = np.percentile(ratios, [25, 50, 75])
        return (float(np.median(cand)), float(np.median(default)), float(middle),
                float((high - low) / max(middle, 1e-12)))

    def change(self) -> tuple[float, float]:
        """The median over repeats of the whole model's seconds under the candidate minus
        under the default, and its interquartile range over the default's median: the
        time of a change that adds or removes groups."""
        delta = np.array(self.candidate).sum(axis=1) - np.array(self.default).sum(axis=1)
        low, middle, high = np.percentile(delta, [25, 50, 75])
        return float(middle), float((high - low) / max(np.median(
            np.array(self.default).sum(axis=1)), 1e-12))

    def total_ratio(self) -> float:
        """The median over repeats of the whole model's time under the candidate over
        under the default (every group of each, whatever groups each has)."""
        return float(np.median(np.array(self.candidate).sum(axis=1)
                               / np.maximum(np.array(self.default).sum(axis=1), 1e-12)))

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
                 default: Path, run_seconds: float, worker: "LocalWorker | SshWorker",
                 tolerance: float = 1e-3):
        self.build = build
        self.worker = worker
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
        job = {"default": self.default.name, "candidate": artifact.name,
               "feed": self.feed_path.name, "threads": self.build.threads, "runs": self.runs,
               "repeats": 8, "seconds": 4.0, "tolerance": self.tolerance}
        with tempfile.TemporaryDirectory(dir=self.workdir) as scratch:
            job_path, result_path = Path(scratch) / "job.json", Path(scratch) / "result.json"
            job_path.write_text(json.dumps(job))
            status, stderr = self.worker.run([self.default, self.feed_path, artifact],
                                             job_path, result_path, self.limit)
            if status is None:
                return Outcome("hung", f"it ran past the {self.limit:.0f} s limit")
            if status < 0:
                return Outcome("crashed", f"the worker died of {signal.Signals(-status).name}")
            if status != 0 or not result_path.exists():
                tail = (stderr.strip().splitlines() or ["no message"])[-1]
                return Outcome("failed", f"the worker failed: {tail}")
            result = json.loads(result_path.read_text())
        if result["status"] != "ok":
            return Outcome(result["status"], result["reason"])
        return Outcome("ok", groups=result["groups"],
                       candidate_groups=result["candidate_groups"], candidate=result["candidate"],
                       default=result["default"], noise=result["noise"],
                       machine=result["machine"])


class LocalWorker:
    """Runs the worker on this machine, beside the artifacts."""

    where = "this machine"

    def run(self, files: Sequence[Path], job: Path, result: Path, limit: float
            ) -> tuple[int | None, str]:
        """(exit status, negative for a signal, or None past `limit` s; stderr)."""
        for path in files:
            link = job.parent / path.name
            if not link.exists():
                link.symlink_to(path.resolve())
        try:
            done = subprocess.run([sys.executable, "-m", "kiln.tune.worker", str(job),
                                   str(result)], capture_output=True, text=True,
                                  timeout=limit)
        except subprocess.TimeoutExpired:
            return None, ""
        return done.returncode, done.stderr


class SshWorker:
    """Runs the worker on another machine over SSH (Kiln and numpy installed there): the
    artifacts, the feed and the job are copied with scp into a folder of its own under
    ~/.cache/kiln-tune, the worker runs there under `timeout`, and the result comes back."""

    def __init__(self, host: str, python: str = "python3"):
        self.host, self.python = host, python
        self.folder = f".cache/kiln-tune/{uuid.uuid4().hex[:12]}"
        self.sent: set[str] = set()
        self.where = f"{host} (over SSH)"
        self._ssh(f"mkdir -p {shlex.quote(self.folder)}", 60)

    def _ssh(self, command: str, limit: float) -> subprocess.CompletedProcess:
        try:
            done = subprocess.run(["ssh", "-o", "BatchMode=yes", self.host, command],
                                  capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            raise WorkerError(f"ssh {self.host} did not answer within {limit:.0f} s") from None
        except FileNotFoundError:
            raise WorkerError("--ssh needs the ssh and scp commands (openssh-client)") from None
        if done.returncode == 255:
            raise WorkerError(f"ssh {self.host} failed: {done.stderr.strip()}")
        return done

    def _copy(self, sources: Sequence[str], destination: str) -> None:
        done = subprocess.run(["scp", "-q", "-o", "BatchMode=yes", *sources, destination],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise WorkerError(f"scp to or from {self.host} failed: {done.stderr.strip()}")

    def run(self, files: Sequence[Path], job: Path, result: Path, limit: float
            ) -> tuple[int | None, str]:
        """As LocalWorker.run, on the remote machine; a remote signal death shows as an
        exit status of 128 + the signal, `timeout`'s 124 as a hang."""
        fresh = [str(p) for p in files if p.name not in self.sent or p.suffix == ".so"
                 and p.name.startswith("candidate")]
        self._copy([*fresh, str(job)], f"{self.host}:{self.folder}/")
        self.sent.update(Path(p).name for p in fresh)
        folder = shlex.quote(self.folder)
        done = self._ssh(f"cd {folder} && timeout -k 5 {int(limit)} {shlex.quote(self.python)} "
                         f"-m kiln.tune.worker {job.name} {result.name}; status=$?; "
                         f"rm -f {job.name}; exit $status", limit + 120)
        if done.returncode == 124:
            return None, done.stderr
        if 128 < done.returncode < 128 + 65:
            return -(done.returncode - 128), done.stderr
        if done.returncode == 0:
            self._copy([f"{self.host}:{self.folder}/{result.name}"], str(result))
        return done.returncode, done.stderr


class WorkerError(KilnError, RuntimeError):
    """The remote measurement worker cannot be reached or run."""
