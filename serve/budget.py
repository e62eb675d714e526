"""One thread budget for the whole server: the runtime threads of every loaded instance
together never exceed it, so several models (or instances) on one machine do not
oversubscribe its cores the way per-model thread defaults do."""

from __future__ import annotations

import os
import threading

from .errors import ConfigError, ServeError


class BudgetExceeded(ServeError, RuntimeError):
    """Loading a model would take more runtime threads than the server's budget has left."""


def default_budget() -> int:
    """The cores this process may run on (its CPU affinity), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class ThreadBudget:
    """Threads handed to model instances, out of `total`."""

    def __init__(self, total: int | None = None):
        if total is None:
            total = default_budget()
        if isinstance(total, bool) or not isinstance(total, int) or total < 1:
            raise ConfigError(f"--threads: expected a positive number of threads, got "
                              f"{total!r}")
        self.total = total
        self._used = 0
        self._draining = 0   # of _used: threads of versions replaced, draining to be freed
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        return self._used

    def reserve(self, count: int, who: str, borrow: int = 0) -> None:
        """Take `count` threads for `who`, or raise BudgetExceeded saying what is left.
        `borrow`: threads of the versions that `who` replaces, and the threads of versions
        already draining, count as free: they are given back once their last request is
        answered, so a new version can load beside the one it replaces on a full budget
        (the two hold more than the budget only while the old one drains)."""
        with self._lock:
            if self._used - self._draining - borrow + count > self.total:
                raise BudgetExceeded(
                    f"{who} needs {count} runtime thread(s) but the server's budget of "
                    f"{self.total} has {self.total - self._used} left; lower its instances or "
                    f"threads_per_instance in config.json, or start the server with a larger "
                    f"--threads")
            self._used += count

    def draining(self, count: int) -> None:
        """`count` threads in use belong to a version that drains and will free them."""
        with self._lock:
            self._draining += count

    def release(self, count: int, draining: bool = False) -> None:
        """Give back `count` threads (`draining`: those of a version marked draining)."""
        with self._lock:
            self._used = max(0, self._used - count)
            if draining:
                self._draining = max(0, self._draining - count)
