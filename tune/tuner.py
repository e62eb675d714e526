"""`kiln tune`: search every kernel's schedule of one model on this machine.

The model's groups are planned once (driver.plan_kernels); groups with one signature are
one task, whose space is its kernel choices and their schedule fields (space.py). The
default artifact is measured first, and each task's share of the model's time sets how
many candidates it may try. Then the search goes in rounds: every task still searching
proposes one candidate (evolution: steps and crossovers of the best measured so far,
ranked by a cost model, with some random picks kept for exploration), and one artifact
built with all of them is measured against the default in a worker (measure.py): its
profile gives every task its own time. Groups run one after another, so a candidate's time
is its groups' time whatever the other groups run. A round that fails is split in halves
until the failing candidate is found and recorded with its reason; the others are measured
again. Every measured candidate is appended to the records file at once, so an interrupted
tune resumes where it stopped, without measuring a candidate twice.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import __version__
from ..codegen.kernels.registry import KERNELS
from ..codegen.kernels.select import line_key
from ..codegen.kernels.tuning_records import (RECORDS_VERSION, read_records,
                                              schedule_format, why_not)
from ..compiler.errors import KilnError
from ..driver import OptionError, host_threads, plan_kernels
from ..frontends.onnx import load_model
from ..runtime.inputs import random_feed
from ..runtime.manifest import read_manifest
from ..targets import get_target
from ..targets.host_cpu import host_cpu
from .cost_model import CostModel
from .measure import Build, LocalWorker, Measurer, Outcome, SshWorker
from .space import Candidate, Space

#: Tasks below this share of the model's time are left on their defaults.
MIN_SHARE = 0.005
#: Every task tuned gets at least this many candidates.
MIN_TRIALS = 4
#: Of the candidates a task proposes, this fraction is drawn at random (exploration).
EXPLORE = 0.25
#: Mutants the search ranks with the cost model for each one it measures.
POOL = 48
#: Joint measurements of every task's best at the end, at most (see Tuner._validate).
VALIDATIONS = 3


class TuneError(KilnError, ValueError):
    """Tuning cannot start: the target, the options or the records file."""


@dataclass
class Task:
    """One kernel signature of the model and its search."""

    key: str
    signature: dict[str, Any]
    groups: list[str]
    space: Space
    share: float = 0.0
    default_seconds: float = 0.0
    allotment: int = 0
    #: each measured candidate's time / the default's, one entry per measurement
    measured: dict[Candidate, list[float]] = field(default_factory=dict)
    failed: dict[Candidate, str] = field(default_factory=dict)
    exhausted: bool = False
    noise: list[float] = field(default_factory=list)   # of each measurement this session

    @property
    def label(self) -> str:
        name = self.groups[0] + (f" (+{len(self.groups) - 1})" if len(self.groups) > 1 else "")
        return f"{self.space.defaults[self.space.kernels[0]].kernel} {name}"

    @property
    def trials(self) -> int:
        """Distinct candidates tried (a winner's second measurement is not one)."""
        return len(self.measured) + len(self.failed)

    def ratio(self, candidate: Candidate) -> float:
        """A measured candidate's worst ratio to the default: a gain counts only when
        every measurement of it shows one."""
        return max(self.measured[candidate])

    def ranked(self) -> list[Candidate]:
        return sorted(self.measured, key=self.ratio)

    def best(self) -> tuple[Candidate | None, float]:
        """The fastest candidate measured and its speedup over the default (1: none)."""
        ranked = self.ranked()
        if not ranked or self.ratio(ranked[0]) >= 1.0:
            return None, 1.0
        return ranked[0], 1.0 / self.ratio(ranked[0])

    def unconfirmed(self) -> Candidate | None:
        """The best candidate, when it beats the default on one measurement only: one
        lucky burst must not decide, so it is measured again before anything else."""
        best, _ = self.best()
        return best if best is not None and len(self.measured[best]) == 1 else None


@dataclass
class Progress:
    """What a progress display shows after each round."""

    elapsed: float
    budget: float
    round: int
    tasks: int
    searching: int
    measured: int
    failed: int
    model_speedup: float
    best: str                   # the task that gained most so far, with its speedup


@dataclass
class TuneResult:
    records: Path
    tasks: list[Task]
    measured: int
    failed: int
    resumed: int
    seconds: float
    default_seconds: float
    curve: list[tuple[float, float]]   # (seconds since start, estimated model seconds)
    validated: float | None = None     # measured model speedup with every best at once

    @property
    def tuned_seconds(self) -> float:
        return self.curve[-1][1] if self.curve else self.default_seconds

    def summary(self) -> str:
        """A table of the tasks by time: default ms, best ms, speedup, trials, kernel."""
        lines = [f"{'kernel / group':<58} {'share':>6} {'ms':>8} {'tuned':>8} {'gain':>6} "
                 f"{'trials':>6}"]
        for task in sorted(self.tasks, key=lambda t: -t.default_seconds):
            best, gain = task.best()
            kernel = f" -> {best.kernel}" if best and best.kernel != task.space.kernels[0] \
                else ""
            lines.append(f"{(task.label + kernel)[:58]:<58} {100 * task.share:5.1f}% "
                         f"{task.default_seconds * 1e3:8.3f} "
                         f"{task.default_seconds / gain * 1e3:8.3f} {gain:5.2f}x "
                         f"{task.trials:6d}")
        lines.append(f"model (sum of groups): {self.default_seconds * 1e3:.3f} ms -> "
                     f"{self.tuned_seconds * 1e3:.3f} ms "
                     f"({self.default_seconds / self.tuned_seconds:.2f}x); "
                     f"{self.measured} candidates measured, {self.failed} failed, "
                     f"{self.resumed} from earlier records, in {self.seconds:.0f} s")
        noise = [n for t in self.tasks for n in t.noise]
        if noise:
            lines.append(f"measurement noise (interquartile range of the paired ratios over "
                         f"their median): median {100 * float(np.median(noise)):.1f}%, worst "
                         f"{100 * max(noise):.1f}%")
        if self.validated is not None:
            lines.append(f"measured with every tuned schedule at once: {self.validated:.3f}x "
                         f"the default artifact's speed (groups' time, same worker)")
        return "\n".join(lines)


def tune(model: Any, records: str | Path, target: str = "host",
         dims: Mapping[str, int] | None = None,
         shapes: Mapping[str, Sequence[int]] | None = None,
         consts: Mapping[str, Any] | None = None, cpu: str | None = None,
         threads: int | None = None, budget: float = 600.0, trials: int | None = None,
         seed: int = 0, progress: Callable[[Progress], None] | None = None,
         log: Callable[[str], None] | None = None, ssh: str | None = None,
         remote_python: str = "python3") -> TuneResult:
    """Tune `model`'s kernels on this machine for `budget` seconds (or until every task has
    tried `trials` candidates), appending every measurement to `records` (resumed from
    when it exists); `threads` is the deployment's thread count (default: this host's
    cores). compile(..., tuning=records) then builds the tuned artifact. `ssh`: measure on
    that machine instead (`user@host`, Kiln installed for `remote_python` there), which may
    be of a foreign target."""
    return Tuner(model, records, target, dims=dims, shapes=shapes, consts=consts, cpu=cpu,
                 threads=threads, budget=budget, trials=trials, seed=seed, progress=progress,
                 log=log, ssh=ssh, remote_python=remote_python).run()


class Tuner:
    """One tuning session (see the module docstring)."""

    def __init__(self, model: Any, records: str | Path, target: str = "host", *,
                 dims: Mapping[str, int] | None = None,
                 shapes: Mapping[str, Sequence[int]] | None = None,
                 consts: Mapping[str, Any] | None = None, cpu: str | None = None,
                 threads: int | None = None, budget: float = 600.0,
                 trials: int | None = None, seed: int = 0,
                 progress: Callable[[Progress], None] | None = None,
                 log: Callable[[str], None] | None = None, ssh: str | None = None,
                 remote_python: str = "python3"):
        """tune()'s arguments; run() tunes, or prepare() and evaluate() take it a step at a
        time."""
        spec = get_target(target)
        if not spec.is_host and ssh is None:
            raise TuneError(
                f"target {spec.name} is not this machine's ({host_cpu()}): timings under an "
                f"emulator say nothing about the real CPU, so Kiln does not tune there. Tune "
                f"on a {spec.name} machine, or measure on one from here with --ssh HOST "
                f"(Kiln installed there: docs/tuning.md)")
        self.ssh, self.remote_python = ssh, remote_python
        if not (isinstance(budget, (int, float)) and budget > 0):
            raise TuneError(f"budget={budget!r}: give a positive number of seconds")
        if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int)
                                   or trials < 1):
            raise TuneError(f"trials={trials!r}: give a positive number of candidates")
        self.threads = host_threads() if threads is None else threads
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) \
                or self.threads < 1:
            raise OptionError(f"threads={threads!r}: give a positive thread count")
        self.proto = load_model(model)
        self.records = Path(records)
        if not self.records.parent.exists():
            raise TuneError(f"the folder of the records file {self.records} does not exist")
        self.build = Build(self.proto, spec.name, dims, shapes, consts, cpu, self.threads)
        self.budget, self.trials = float(budget), trials
        self.rng = random.Random(seed)
        self.progress, self.log = progress, log or (lambda message: None)
        self.model = CostModel()
        self.machine = host_cpu() if ssh is None else ""   # the worker's, once it answers
        self.measured = self.failed = self.resumed = 0
        self.curve: list[tuple[float, float]] = []

    # -- setting up ------------------------------------------------------------------------
    def _plan(self) -> list[Task]:
        """The tasks of the model: one per kernel signature, with the kernels that could run
        it. Kernels that would change the graph are planned once more, each forced by a
        schedule line without a schedule, to see their groups as they would run."""
        graph, selector = self._planned(())
        self.selector = selector
        members = _by_key(graph)
        forced = []
        for key, groups in members.items():
            chosen = KERNELS[groups[0].kernel.kernel]
            for name in selector.alternatives.get(key, [])[1:]:
                kernel = KERNELS[name]
                if kernel.stage == "layout" and (kernel.layout, kernel.padded_input) != \
                        (chosen.layout, chosen.padded_input):
                    forced.append({"group": groups[0].name, "kernel": name,
                                   "target": selector.target_name, "cpu": selector.cpu,
                                   "vector_bits": selector.vector_bits,
                                   "signature": groups[0].kernel.signature, "schedule": None})
        changed = _by_key(self._planned(forced)[0]) if forced else {}
        tasks = []
        for key, groups in members.items():
            decision = groups[0].kernel
            runs = {decision.kernel: groups}
            for name in selector.alternatives.get(key, [])[1:]:
                other = changed.get(key, [])
                runs[name] = other if other and other[0].kernel.kernel == name else groups
            task = Task(key, decision.signature, [g.name for g in groups],
                        Space(runs, selector.target))
            if task.space.size() > 1:
                tasks.append(task)
        return tasks

    def _planned(self, lines: Sequence[dict[str, Any]]):
        return plan_kernels(self.proto, self.build.target, self.build.dims, self.build.shapes,
                            self.build.consts, self.build.cpu, self.threads,
                            schedule_lines=[(f"kiln tune's line {i + 1}", line)
                                            for i, line in enumerate(lines)])

    def _resume(self, tasks: list[Task]) -> None:
        """Take the measurements of an existing records file that apply here."""
        if not self.records.exists():
            return
        by_key = {t.key: t for t in tasks}
        for _, record in read_records([self.records]):
            if why_not(record, self.selector.target_name, self.selector.cpu,
                       self.selector.vector_bits, self.machine, self.threads) is not None:
                continue
            task = by_key.get(line_key(record))
            if task is None or record["kernel"] not in task.space.axes:
                continue
            candidate = Candidate(record["kernel"], tuple(
                (name, record["schedule"].get(name)) for name, _ in
                task.space.axes[record["kernel"]]))
            if record["status"] == "ok" and record.get("seconds") and \
                    record.get("default_seconds"):
                ratio = record["seconds"] / record["default_seconds"]
                task.measured.setdefault(candidate, []).append(ratio)
                self.model.add(task.key, candidate, ratio)
            else:
                task.failed[candidate] = record.get("reason", record["status"])
            self.resumed += 1

    # -- the search ------------------------------------------------------------------------
    def _propose(self, task: Task) -> Candidate | None:
        """The next candidate of a task, or None when its space is exhausted."""
        again = task.unconfirmed()
        if again is not None:
            return again
        seen = set(task.measured) | set(task.failed)
        default = task.space.defaults[task.space.kernels[0]]
        seen.add(default)
        parents = task.ranked()[:4] or [default]
        pool: list[Candidate] = []
        for parent in parents:
            pool += task.space.neighbours(parent)
        for _ in range(len(parents)):
            a, b = self.rng.choice(parents), self.rng.choice(parents)
            pool.append(task.space.crossover(a, b, self.rng))
        explore = self.rng.random() < EXPLORE or not self.model.ready(parents[0].kernel)
        pool += [task.space.random(self.rng) for _ in range(POOL // 2 if explore else 8)]
        fresh = []
        for candidate in dict.fromkeys(pool):
            if candidate not in seen and task.space.fits(candidate):
                fresh.append(candidate)
        if not fresh:
            for _ in range(POOL * 4):   # the neighbourhood is spent: look further away
                candidate = task.space.random(self.rng)
                if candidate not in seen and task.space.fits(candidate):
                    return candidate
            return None
        if explore:
            return self.rng.choice(fresh)
        predicted = self.model.predict(task.key, fresh)
        return fresh[int(predicted.argmin())]

    def _line(self, task: Task, candidate: Candidate) -> dict[str, Any]:
        """The schedule-file line that makes a build run `candidate` for `task`."""
        return {"group": task.groups[0], "kernel": candidate.kernel,
                "target": self.selector.target_name, "cpu": self.selector.cpu,
                "vector_bits": self.selector.vector_bits, "signature": task.signature,
                "schedule": candidate.schedule}

    def evaluate(self, trial: list[tuple[Task, Candidate]]) -> None:
        """Measure candidates together; on a failure, halve until each is accounted for."""
        outcome = self.measurer.measure([self._line(t, c) for t, c in trial])
        if outcome.status == "ok":
            self._account(trial, outcome)
            return
        if len(trial) == 1:
            self._record(trial[0][0], trial[0][1], outcome)
            return
        self.log(f"a round of {len(trial)} candidates {outcome.status} ({outcome.reason}); "
                 f"measuring them in halves to find which")
        half = len(trial) // 2
        self.evaluate(trial[:half])
        self.evaluate(trial[half:])

    def _account(self, trial: list[tuple[Task, Candidate]], outcome: Outcome) -> None:
        """Record each candidate's time from a measurement that ran them all."""
        alone = len(trial) == 1
        for task, candidate in trial:
            _, default, ratio, noise = outcome.seconds(task.groups)
            seconds = default * ratio
            if alone and candidate.kernel in task.space.reshaping:   # see Space.reshaping
                change, noise = outcome.change()
                seconds = default + change
            if default > 0 and seconds > 0:
                self._record(task, candidate, outcome, seconds, default, noise)

    def _record(self, task: Task, candidate: Candidate, outcome: Outcome,
                seconds: float | None = None, default: float | None = None,
                noise: float = 0.0) -> None:
        """Append one measurement (or failure) to the records file and the search."""
        record = {"kiln_tuning": RECORDS_VERSION, "kiln": __version__,
                  "target": self.selector.target_name, "cpu": self.selector.cpu,
                  "vector_bits": self.selector.vector_bits, "machine": self.machine,
                  "threads": self.threads, "kernel": candidate.kernel,
                  "schedule_format": schedule_format(KERNELS[candidate.kernel]),
                  "signature": task.signature, "schedule": candidate.schedule,
                  "status": outcome.status, "seconds": seconds, "default_seconds": default,
                  "noise": round(noise, 4), "groups": task.groups,
                  "model": self.proto.graph.name, "reason": outcome.reason}
        with self.records.open("a") as out:
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
        if outcome.status == "ok" and seconds and default:
            task.measured.setdefault(candidate, []).append(seconds / default)
            task.noise.append(noise)
            self.model.add(task.key, candidate, seconds / default)
            self.measured += 1
        else:
            task.failed[candidate] = outcome.reason
            self.failed += 1
            self.log(f"{task.label}: candidate {candidate.kernel} {candidate.schedule} "
                     f"{outcome.status}: {outcome.reason}")

    def _allot(self, tasks: list[Task], rounds: int) -> None:
        """Candidates per task for `rounds` more rounds, by its share of the model's time
        (the heaviest task takes part in every round), at least MIN_TRIALS, at most
        --trials."""
        heaviest = max((t.share for t in tasks), default=1.0)
        for task in tasks:
            task.allotment = task.trials + max(MIN_TRIALS if not task.trials else 1,
                                               math.ceil(rounds * task.share / heaviest))
            if self.trials is not None:
                task.allotment = min(task.allotment, self.trials)

    def _next_round(self, tasks: list[Task]) -> list[tuple[Task, Candidate]]:
        """One candidate of each task still within its allotment; when every allotment is
        spent before the budget, each searching task gets as many again."""
        for attempt in range(2):
            trial = []
            for task in tasks:
                if task.trials >= task.allotment:
                    continue
                candidate = self._propose(task)
                if candidate is None:
                    task.exhausted = True
                    task.allotment = task.trials
                else:
                    trial.append((task, candidate))
            if trial or self.trials is not None:
                return trial
            for task in tasks:
                if not task.exhausted:
                    task.allotment = 2 * task.trials
        return []

    def _estimate(self, tasks: list[Task]) -> float:
        """The model's time with every task at its best, from the baseline profile."""
        gained = sum(t.default_seconds * (1 - 1 / t.best()[1]) for t in tasks)
        return self.default_seconds - gained

    def run(self) -> TuneResult:
        """Plan, measure the default, search until the budget or the trials run out."""
        with tempfile.TemporaryDirectory(prefix="kiln-tune-") as scratch:
            tasks = self.prepare(Path(scratch))
            number, last = 0, 0.0
            while time.monotonic() - self.start + 2 * last < self.budget:
                trial = self._next_round(tasks)
                if not trial:
                    break
                number += 1
                began = time.monotonic()
                shared = [(t, c) for t, c in trial if c.kernel not in t.space.reshaping]
                alone = [(t, c) for t, c in trial if c.kernel in t.space.reshaping]
                if shared:
                    self.evaluate(shared)
                if alone:                 # one a round; the others are proposed again later
                    self.evaluate(alone[:1])
                last = time.monotonic() - began
                if number == 1:   # now a round's cost is known: allot the rest by it
                    left = self.budget - (time.monotonic() - self.start)
                    self._allot(tasks, rounds=1 + int(left / last))
                self.curve.append((time.monotonic() - self.start, self._estimate(tasks)))
                if self.progress is not None:
                    self.progress(self._progress(number, tasks, len(trial)))
            again = [(t, t.unconfirmed()) for t in tasks if t.unconfirmed() is not None]
            for part in ([(t, c) for t, c in again if c.kernel not in t.space.reshaping],
                         *([pair] for pair in again if pair[1].kernel in pair[0].space.reshaping)):
                if part:
                    self.evaluate(part)   # type: ignore[arg-type]
            if again:
                self.curve.append((time.monotonic() - self.start, self._estimate(tasks)))
            validated = self._validate(tasks)
        return TuneResult(self.records, tasks, self.measured, self.failed, self.resumed,
                          time.monotonic() - self.start, self.default_seconds, self.curve,
                          validated)

    def _validate(self, tasks: list[Task]) -> float | None:
        """Measure every task's best at once, and record each one's time in that company:
        a group's time also depends on what the groups around it leave in the caches, so a
        best that loses beside the others' bests stops being the best. Repeated (a few
        times at most) until the bests hold; returns the whole model's measured speedup
        with them (None: no task beat its default, or that artifact failed, logged)."""
        gain = None
        for _ in range(VALIDATIONS):
            bests = [(t, best) for t in tasks for best in [t.best()[0]] if best]
            if not bests:
                return None
            outcome = self.measurer.measure([self._line(t, c) for t, c in bests])
            if outcome.status != "ok":
                self.log(f"the artifact with every best schedule {outcome.status}: "
                         f"{outcome.reason}")
                return None
            self._account(bests, outcome)
            ratio = outcome.total_ratio()
            gain = 1.0 / ratio if ratio > 0 else None
            if [(t, t.best()[0]) for t, _ in bests] == bests:
                break
        return gain

    def prepare(self, workdir: Path) -> list[Task]:
        """The tasks worth tuning, with their shares of the default artifact's time (built
        and measured in `workdir`) and their first allotments; earlier records resumed."""
        self.start = time.monotonic()
        tasks = self._plan()
        if self.ssh is None:
            self._resume(tasks)
        default = workdir / "default.so"
        self.build.artifact(default)
        worker = LocalWorker() if self.ssh is None else SshWorker(self.ssh, self.remote_python)
        self.measurer = Measurer(self.build, workdir, _feed(default), default, 0.05, worker)
        began = time.monotonic()
        baseline = self.measurer.measure([])
        round_seconds = time.monotonic() - began
        if baseline.status != "ok":
            raise TuneError(f"the default artifact could not be measured on "
                            f"{worker.where}: {baseline.status}: {baseline.reason}")
        if self.ssh is not None:
            self.machine = baseline.machine
            self._resume(tasks)   # now that the machine is known
        per_group = baseline.per_group()
        self.default_seconds = sum(per_group.values())
        self.measurer.calibrate(self.default_seconds)
        for task in tasks:
            task.default_seconds = sum(per_group.get(g, 0.0) for g in task.groups)
            task.share = task.default_seconds / max(self.default_seconds, 1e-12)
        tasks = [t for t in tasks if t.share >= MIN_SHARE]
        self._allot(tasks, rounds=max(MIN_TRIALS, int(self.budget / round_seconds)))
        self.curve.append((time.monotonic() - self.start, self._estimate(tasks)))
        return tasks

    def _progress(self, number: int, tasks: list[Task], searching: int) -> Progress:
        gains = [(t.best()[1], t) for t in tasks]
        gain, best = max(gains, key=lambda item: item[0]) if gains else (1.0, None)
        text = f"{best.label} {gain:.2f}x" if best is not None and gain > 1 else "none yet"
        return Progress(time.monotonic() - self.start, self.budget, number, len(tasks), searching,
                        self.measured, self.failed,
                        self.default_seconds / max(self._estimate(tasks), 1e-12), text)


def _feed(artifact: Path) -> dict[str, Any]:
    """Seeded random inputs for an artifact, from its manifest (it may be of a foreign
    target, so it is not loaded here)."""
    inputs = [SimpleNamespace(name=t["name"], dtype=np.dtype(t["dtype"]), shape=t["shape"])
              for t in read_manifest(str(artifact))["inputs"]]
    return random_feed(inputs, {}, seed=0)


def _by_key(graph: Any) -> dict[str, list]:
    """The graph's groups with a kernel decision, by the decision's signature key."""
    members: dict[str, list] = {}
    for group in graph.groups or []:
        if group.kernel is not None:
            members.setdefault(group.kernel.key, []).append(group)
    return members
