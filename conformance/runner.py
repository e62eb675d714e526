"""Run node tests in worker processes, so a crash (segfault, abort, hang) ends one test only.

Each worker compiles a test for the host, loads the artifact, runs it on the stored inputs
and compares with the stored outputs. A test ends as one of:

- pass
- unsupported: Kiln refused the model with its own diagnostic (a KilnError) while compiling
- wrong: it compiled and ran, but an output differs (value, shape or dtype)
- crash: the C compiler failed on generated code (ToolchainError), a non-Kiln exception,
  a failed run, the worker died (signal) or the test ran past its time limit

When a compile refuses because an input must be known at compile time, the worker binds
exactly the inputs the error names to the test's stored values (as `--const` would) and
compiles again; the outcome records what it bound, and `pass_kind` tells a pass of generated
code from one with bound inputs or with no run-time input left.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .cases import NodeTest, compare, load_data_set, primary_op

STATUSES = ("pass", "unsupported", "wrong", "crash")
#: What a pass exercised (pass_kind): everything at run time, inputs bound at compile time
#: (integers only, or some float/bool), or no run-time input at all.
PASS_KINDS = ("run-time", "bound-int", "bound-float", "no-run-time-input")
#: Seconds one test may take (compile + run) before it counts as a hang.
DEFAULT_TIMEOUT = 300.0


@dataclass
class Outcome:
    """How one test ended, and why."""

    name: str
    op: str
    status: str
    reason: str = ""
    seconds: float = 0.0
    #: Inputs bound to their stored values at compile time (name -> numpy dtype), and how
    #: many inputs were left to feed at run time (-1: the test did not get that far).
    bound: dict[str, str] = field(default_factory=dict)
    runtime_inputs: int = -1


def run_test(test: NodeTest, workdir: Path) -> Outcome:
    """Compile, run and check one node test in this process."""
    import onnx

    from ..compiler.errors import InputError, KilnError, ToolchainError
    from ..runtime import load

    start = time.perf_counter()
    op = "(unreadable)"
    consts: dict = {}
    runtime_inputs = -1

    def done(status: str, reason: str = "") -> Outcome:
        return Outcome(test.name, op, status, reason.strip(),
                       round(time.perf_counter() - start, 3),
                       {name: str(value.dtype) for name, value in consts.items()},
                       runtime_inputs)

    try:
        model = onnx.load(str(test.model_path))
    except Exception as exc:  # noqa: BLE001  (a broken test file is reported, not raised)
        return done("crash", f"cannot read model.onnx: {exc}")
    op = primary_op(model, test.name)
    library = workdir / f"{test.name}.so"
    try:
        feed, expected = load_data_set(test, model)
    except Exception as exc:  # noqa: BLE001
        return done("unsupported", f"stored test data is not plain tensors: {exc}")
    try:
        compile_binding_named_inputs(model, feed, library, consts)
    except ToolchainError as exc:
        return done("crash", f"C compiler failed: {_first_line(str(exc))}")
    except KilnError as exc:
        after = f" (after binding {', '.join(consts)} at compile time)" if consts else ""
        return done("unsupported", _kiln_reason(exc) + after)
    except Exception as exc:  # noqa: BLE001
        return done("crash", f"{type(exc).__name__} while compiling: {exc} "
                             f"[{_where(exc)}]")
    feed = {k: v for k, v in feed.items() if k not in consts}
    runtime_inputs = len(feed)
    note = f"inputs {', '.join(consts)} bound at compile time" if consts else ""
    try:
        with load(library, threads=1) as session:
            actual = list(session.run(feed).values())
    except InputError as exc:
        return done("wrong", f"artifact's inputs differ from the model's: {exc}")
    except KilnError as exc:
        return done("crash", f"run failed: {exc}")
    except Exception as exc:  # noqa: BLE001
        return done("crash", f"{type(exc).__name__} while running: {exc} [{_where(exc)}]")
    finally:
        for path in (library, library.with_suffix(".h")):
            path.unlink(missing_ok=True)
    if len(actual) != len(expected):
        return done("wrong", f"{len(actual)} outputs, expected {len(expected)}")
    for index, (a, e) in enumerate(zip(actual, expected)):
        problem = compare(a, e)
        if problem is not None:
            return done("wrong", f"output {index}: {problem}" + (f" ({note})" if note else ""))
    return done("pass", note)


def compile_binding_named_inputs(model, feed: dict, library: Path, consts: dict) -> None:
    """Compile `model` for the host into `library`. When Kiln refuses because an input must
    be known at compile time, bind exactly the inputs its error names (`Problem.consts`) to
    their values in `feed`, as a user passes `--const NAME=VALUE`, and compile again, until
    it compiles or refuses for another reason (raised). `consts` collects what was bound
    (name -> value), also when the compile fails in the end."""
    from ..compiler.errors import UnsupportedModelError
    from ..driver import compile_model

    while True:
        try:
            compile_model(model, target="host", output=library, consts=dict(consts) or None)
            return
        except UnsupportedModelError as exc:
            named = [name for name in needed_consts(exc) if name not in consts]
            if not named or any(name not in feed for name in named):
                raise
            consts.update((name, feed[name]) for name in named)


def needed_consts(exc: Exception) -> list[str]:
    """The graph inputs an UnsupportedModelError says must be fixed at compile time, in the
    order its problems name them (none for any other error)."""
    names: list[str] = []
    for problem in getattr(exc, "problems", ()):
        names += [name for name in problem.consts if name not in names]
    return names


def pass_kind(outcome: Outcome) -> str:
    """Which of PASS_KINDS a passing outcome is: every input fed at run time; some bound at
    compile time, all integers; some bound that are float or bool; or no input left at run
    time (all bound, or the model has none), so the numpy evaluator folded it all and no
    generated code computed the answer."""
    if outcome.runtime_inputs == 0:
        return "no-run-time-input"
    if not outcome.bound:
        return "run-time"
    if all(_is_integer(dtype) for dtype in outcome.bound.values()):
        return "bound-int"
    return "bound-float"


def _is_integer(dtype: str) -> bool:
    import numpy as np

    try:
        return np.dtype(dtype).kind in "iu"
    except TypeError:
        return False


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _kiln_reason(exc: Exception) -> str:
    problems = getattr(exc, "problems", None)
    if problems:
        return "; ".join(p.reason + (f" ({p.op_type})" if p.op_type else "") for p in problems)
    return f"{type(exc).__name__}: {_first_line(str(exc))}"


def _where(exc: Exception) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    frame = frames[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


def _worker(conn, workdir: str) -> None:
    """Serve tests sent over `conn` until it sends None."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        name, folder = message
        outcome = run_test(NodeTest(name, Path(folder)), Path(workdir))
        conn.send(asdict(outcome))


class _Slot:
    """One worker process and the test it is running."""

    def __init__(self, context, workdir: Path):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker, args=(child, str(workdir)), daemon=True)
        self.process.start()
        child.close()
        self.test: NodeTest | None = None
        self.started = 0.0

    def give(self, test: NodeTest) -> None:
        self.test, self.started = test, time.perf_counter()
        self.conn.send((test.name, str(test.folder)))

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def run_tests(tests: Sequence[NodeTest], jobs: int = 2, timeout: float = DEFAULT_TIMEOUT,
              progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run `tests` on `jobs` worker processes; outcomes in the order of `tests`."""
    import kiln.driver  # noqa: F401  (import once, before forking workers)
    import kiln.frontends.onnx.converters  # noqa: F401

    context = multiprocessing.get_context("fork")
    workdir = Path(tempfile.mkdtemp(prefix="kiln-conformance-"))
    pending = list(reversed(tests))
    results: dict[str, Outcome] = {}
    slots = [_Slot(context, workdir) for _ in range(max(1, min(jobs, len(tests))))]

    def finish(outcome: Outcome) -> None:
        results[outcome.name] = outcome
        if progress is not None:
            progress(outcome)

    try:
        for slot in slots:
            if pending:
                slot.give(pending.pop())
        while any(slot.test is not None for slot in slots):
            busy = [s for s in slots if s.test is not None]
            deadline = min(s.started for s in busy) + timeout - time.perf_counter()
            ready = wait([s.conn for s in busy] + [s.process.sentinel for s in busy],
                         timeout=min(1.0, max(deadline, 0.0)))
            now = time.perf_counter()
            for index, slot in enumerate(slots):
                if slot.test is None:
                    continue
                outcome = None
                if slot.conn in ready:
                    try:
                        outcome = Outcome(**slot.conn.recv())
                    except (EOFError, OSError):
                        outcome = None
                if outcome is None and (slot.process.sentinel in ready or slot.conn in ready):
                    slot.process.join(1)
                    code = slot.process.exitcode
                    outcome = Outcome(slot.test.name, _op_of(slot.test), "crash",
                                      f"worker died ({_describe_exit(code)})",
                                      round(now - slot.started, 3))
                    slot.stop(kill=True)
                    slot = slots[index] = _Slot(context, workdir)
                elif outcome is None and now - slot.started > timeout:
                    outcome = Outcome(slot.test.name, _op_of(slot.test), "crash",
                                      f"hang: no result after {timeout:.0f} s",
                                      round(now - slot.started, 3))
                    slot.stop(kill=True)
                    slot = slots[index] = _Slot(context, workdir)
                if outcome is None:
                    continue
                finish(outcome)
                slot.test = None
                if pending:
                    slot.give(pending.pop())
    finally:
        for slot in slots:
            slot.stop(kill=slot.test is not None)
        shutil.rmtree(workdir, ignore_errors=True)
    return [results[t.name] for t in tests]


def _op_of(test: NodeTest) -> str:
    try:
        import onnx

        return primary_op(onnx.load(str(test.model_path)), test.name)
    except Exception:  # noqa: BLE001
        return "(unreadable)"


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        import signal

        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def counts(outcomes: Iterable[Outcome]) -> dict[str, int]:
    """status -> how many outcomes have it (every status present)."""
    tally = {status: 0 for status in STATUSES}
    for outcome in outcomes:
        tally[outcome.status] += 1
    return tally
