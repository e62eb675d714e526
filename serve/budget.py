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
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        return self._used

    def reserve(self, count: int, who: str, borrow: int = 0) -> None:
        """Take `count` threads for `who`, or raise BudgetExceeded saying what is left.
        `borrow`: threads of a version that `who` replaces, which may be counted as free
        (that version drains and gives them back once its last request is answered)."""
        with self._lock:
            if self._used - borrow + count > self.total:
                raise BudgetExceeded(
                    f"{who} needs {count} runtime thread(s) but the server's budget of "
                    f"{self.total} has {self.total - self._used} left; lower its instances or "
                    f"threads_per_instance in config.json, or start the server with a larger "
                    f"--threads")
            self._used += count

    def release(self, count: int) -> None:
        with self._lock:
            self._used = max(0, self._used - count)
