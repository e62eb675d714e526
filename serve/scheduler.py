"""Per model version: a bounded queue of inference requests and one worker thread per
instance (a runtime Session each), so that inference runs off the event loop and health
checks stay responsive however busy the model is.

A request that finds the queue full is refused at once (Unavailable: 503 with Retry-After)
instead of waiting behind work the server cannot finish in time; one whose timeout passes
while it waits is taken out of the queue and refused (QueueTimeout: 504) without being
computed. A request an instance has started is always finished.

With batching (config max_batch_size and dynamic_batching), each instance holds one
session per compiled batch size, and its worker takes requests from the head of the queue
while their rows fit in max_batch_size: it runs them at once when they fill
max_batch_size (or the next one would not fit) or make a preferred batch size, else when
the oldest has waited max_queue_delay_us for company. The same queue bound, 503 and 504
apply: a request taken from the queue past its timeout is answered 504 and left out of the
batch.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from ..runtime import Session
from .batching import request_rows, run_joined
from .config import Batching
from .errors import QueueTimeout, Unavailable

_QUEUED, _RUNNING, _DONE, _EXPIRED = "queued", "running", "done", "expired"


@dataclass
class Timings:
    """Where one request's time went, in seconds."""

    queue: float
    compute: float
    batch: int = 1   # rows of the batch the request ran in (before padding)


class _Job:
    """One request between the event loop and a worker thread. `state` changes only under
    the scheduler's lock, so a job is either expired (never computed) or run, never both."""

    __slots__ = ("feed", "rows", "deadline", "enqueued", "started", "state", "future", "loop")

    def __init__(self, feed: dict[str, np.ndarray], deadline: float | None,
                 loop: asyncio.AbstractEventLoop, rows: int = 1):
        self.feed = feed
        self.rows = rows
        self.deadline = deadline
        self.enqueued = time.perf_counter()
        self.started = 0.0
        self.state = _QUEUED
        self.loop = loop
        self.future: asyncio.Future = loop.create_future()


def _resolve(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.done():   # the awaiting request was cancelled (the server is stopping)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


#: A batch's hook: (rows of the requests, padded rows, seconds, succeeded).
BatchHook = Callable[[int, int, float, bool], None]


def _resolve_all(answered: list[tuple[asyncio.Future, object, BaseException | None]]
                 ) -> None:
    for future, result, error in answered:
        _resolve(future, result, error)


class Scheduler:
    """The queue and workers of one model version. `label` names it in errors and thread
    names (e.g. "resnet version 1"). Without `batching`, `sessions` holds one Session per
    instance and each request is one run; with it, one {batch size: Session} mapping per
    instance, and `on_batch` hears of every batch run."""

    def __init__(self, sessions: Sequence[Session] | Sequence[Mapping[int, Session]],
                 max_queue_size: int, label: str,
                 on_compute: Callable[[float, bool], None] | None = None,
                 batching: Batching | None = None, on_batch: BatchHook | None = None):
        self.label = label
        self.max_queue_size = max_queue_size
        self.batching = batching
        self._on_compute = on_compute
        self._on_batch = on_batch
        self._queue: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._running = 0
        self._closing = False
        self._compute_ewma = 0.0   # seconds per request, for Retry-After
        self._workers = [threading.Thread(target=self._work, args=(self._runner(session),),
                                          daemon=True, name=f"kiln-serve {label} #{i}")
                         for i, session in enumerate(sessions)]
        for worker in self._workers:
            worker.start()

    def _runner(self, sessions: Session | Mapping[int, Session]
                ) -> Callable[[list[_Job]], tuple[list[dict[str, np.ndarray]], int]]:
        """How one instance runs the requests its worker takes: one on its session, or
        several joined into a batch on its sessions by batch size."""
        if self.batching is None:
            return lambda jobs: ([sessions.run(jobs[0].feed)], 0)
        sizes = sorted(sessions)
        return lambda jobs: run_joined([job.feed for job in jobs], [job.rows for job in jobs],
                                       sessions, sizes)

    @property
    def depth(self) -> int:
        """Requests waiting for an instance."""
        return len(self._queue)

    @property
    def busy(self) -> int:
        """Requests waiting or being computed."""
        with self._cond:
            return len(self._queue) + self._running

    async def infer(self, feed: dict[str, np.ndarray], timeout: float | None
                    ) -> tuple[dict[str, np.ndarray], Timings]:
        """Queue `feed`, wait for an instance to run it, and return its outputs and timings.
        `timeout` (seconds, or None) bounds the wait in the queue, not the computation.
        With batching, BadRequest for a batch (dim 0) outside 1..max_batch_size."""
        loop = asyncio.get_running_loop()
        rows = 1 if self.batching is None else request_rows(
            feed, self.batching.max_batch_size, self.label)
        job = _Job(feed, None if timeout is None else time.perf_counter() + timeout, loop,
                   rows)
        with self._cond:
            if self._closing:
                raise Unavailable(f"{self.label} is being unloaded; retry on another version "
                                  f"or after it is loaded again")
            if len(self._queue) >= self.max_queue_size:
                raise Unavailable(f"{self.label}: the queue is full ({self.max_queue_size} "
                                  f"requests waiting); retry later",
                                  retry_after=self._retry_after())
            self._queue.append(job)
            self._cond.notify()
        try:
            if timeout is None:
                return await job.future
            try:
                return await asyncio.wait_for(asyncio.shield(job.future), timeout)
            except asyncio.TimeoutError:
                if self._expire(job):
                    raise self._timeout_error(job, timeout) from None
                return await job.future   # an instance took it just in time: let it finish
        except asyncio.CancelledError:
            self._expire(job)
            raise

    def _expire(self, job: _Job) -> bool:
        """Take a still-queued `job` out of the queue; False when a worker already has it."""
        with self._cond:
            if job.state != _QUEUED:
                return False
            job.state = _EXPIRED
            try:
                self._queue.remove(job)
            except ValueError:
                pass
            return True

    def _timeout_error(self, job: _Job, timeout: float) -> QueueTimeout:
        waited = time.perf_counter() - job.enqueued
        return QueueTimeout(f"{self.label}: the request waited {waited * 1e3:.1f} ms in the "
                            f"queue, past its timeout of {timeout * 1e3:.1f} ms; it was not "
                            f"computed")

    def _retry_after(self) -> float:
        """Seconds after which the queue has likely room again: one queue's worth of work
        spread over the instances, at least one second (the header's unit)."""
        seconds = self._compute_ewma * self.max_queue_size / max(len(self._workers), 1)
        return max(1.0, float(int(seconds + 0.999)))

    @staticmethod
    def _report(hook: Callable[..., None] | None, *args: object) -> None:
        """Call a statistics hook; a hook that fails is printed, never allowed to end the
        worker (its requests would then wait for ever)."""
        if hook is None:
            return
        try:
            hook(*args)
        except Exception:   # noqa: BLE001  (a bug in the hook, not in the request)
            traceback.print_exc(file=sys.stderr)

    def _gather(self) -> list[_Job] | None:
        """Under the lock: wait for the requests of the next batch and take them out of the
        queue (None once closing with nothing left). See the module docstring."""
        batching = self.batching
        while True:
            if not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
                continue
            if batching is None or not batching.join:
                return [self._queue.popleft()]
            count = total = preferred_at = 0
            full = False
            for job in self._queue:
                if total + job.rows > batching.max_batch_size:
                    full = True
                    break
                total += job.rows
                count += 1
                if total in batching.preferred:
                    preferred_at = count
            if full or total == batching.max_batch_size:
                take = count
            elif preferred_at:
                take = preferred_at
            else:
                wait = (self._queue[0].enqueued + batching.max_queue_delay_s
                        - time.perf_counter())
                if wait > 0 and not self._closing:
                    self._cond.wait(wait)
                    continue
                take = count
            return [self._queue.popleft() for _ in range(take)]

    def _work(self, run: Callable[[list[_Job]], tuple[list[dict[str, np.ndarray]], int]]
              ) -> None:
        """A worker: take the next requests (one, or a batch), answer those past their
        timeout with 504, `run` the rest (their outputs in order, and the rows of padding)
        and answer each, until the scheduler closes with nothing left."""
        while True:
            with self._cond:
                jobs = self._gather()
                if jobs is None:
                    return
                now = time.perf_counter()
                batch, expired = [], []
                for job in jobs:
                    if job.deadline is not None and now > job.deadline:
                        job.state = _EXPIRED
                        expired.append(job)
                    else:
                        job.state, job.started = _RUNNING, now
                        batch.append(job)
                self._running += len(batch)
            for job in expired:
                job.loop.call_soon_threadsafe(
                    _resolve, job.future, None,
                    self._timeout_error(job, job.deadline - job.enqueued))
            if not batch:
                continue
            rows = sum(job.rows for job in batch)
            answers, error, padded = None, None, 0
            try:
                answers, padded = run(batch)
            except Exception as exc:   # the model's failure goes back to the batch's requests
                error = exc
            compute = time.perf_counter() - now
            self._compute_ewma = 0.9 * self._compute_ewma + 0.1 * compute if \
                self._compute_ewma else compute
            self._report(self._on_compute, compute, error is None)
            if self.batching is not None:
                self._report(self._on_batch, rows, padded, compute, error is None)
            with self._cond:
                for job in batch:
                    job.state = _DONE
                self._running -= len(batch)
                self._cond.notify_all()
            by_loop: dict[asyncio.AbstractEventLoop, list] = {}
            for position, job in enumerate(batch):
                result = None if error is not None else (
                    answers[position], Timings(job.started - job.enqueued, compute, rows))
                by_loop.setdefault(job.loop, []).append((job.future, result, error))
            for loop, answered in by_loop.items():   # one wake-up of each loop a batch
                loop.call_soon_threadsafe(_resolve_all, answered)

    def refuse_queued(self, message: str) -> int:
        """Answer every request still waiting in the queue with Unavailable(`message`)
        (503, gRPC UNAVAILABLE) without computing it, so that its client can retry
        elsewhere rather than see its connection dropped; the ones running finish. Returns
        how many were refused."""
        with self._cond:
            jobs = list(self._queue)
            self._queue.clear()
            for job in jobs:
                job.state = _EXPIRED
        for job in jobs:
            job.loop.call_soon_threadsafe(_resolve, job.future, None, Unavailable(message))
        return len(jobs)

    def close(self, timeout: float | None = None, abandon_queued: bool = False) -> bool:
        """Refuse new requests, let the workers finish every queued one (or, with
        `abandon_queued`, only those running: at server exit, when no one waits for the
        rest), and join them; False if they were still busy after `timeout` seconds."""
        with self._cond:
            self._closing = True
            if abandon_queued:
                for job in self._queue:
                    job.state = _EXPIRED
                self._queue.clear()
            self._cond.notify_all()
        end = None if timeout is None else time.monotonic() + timeout
        for worker in self._workers:
            worker.join(None if end is None else max(0.0, end - time.monotonic()))
        return not any(worker.is_alive() for worker in self._workers)
