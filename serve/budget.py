"""One thread budget for the whole server: the runtime threads of every loaded instance
together never exceed it, so several models (or instances) on one machine do not
oversubscribe its cores the way per-model thread defaults do."""

from __future__ import annotations

import math
import threading
from pathlib import Path

from .errors import ConfigError, ServeError


class BudgetExceeded(ServeError, RuntimeError):
    """Loading a model would take more runtime threads than the server's budget has left."""


def default_budget(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """The cores this process may run on (its CPU affinity, else os.cpu_count()), at most
    its cgroup's CPU quota rounded up: a container's CPU limit (Kubernetes' `limits.cpu`)
    is a quota, not an affinity, and threads beyond it only wait for their turn."""
    from ..driver import host_threads   # the driver (the compiler) loads only when asked

    cores = host_threads()
    quota = cgroup_cpu_quota(cgroup_root)
    return cores if quota is None else max(1, min(cores, math.ceil(quota)))


def cgroup_cpu_quota(root: str = "/sys/fs/cgroup") -> float | None:
    """CPUs' worth of time per period the cgroup may use (cgroup v2 `cpu.max`, or v1
    `cpu.cfs_quota_us` / `cpu.cfs_period_us`), or None where there is no limit or no
    cgroup file to read."""
    base = Path(root)
    try:
        quota, _, period = (base / "cpu.max").read_text().strip().partition(" ")
        if quota == "max":
            return None
        return int(quota) / int(period or 100000)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((base / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((base / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


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
