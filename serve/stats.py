"""Per-version statistics, as the protocol's statistics extension reports them
(GET /v2/models/{m}[/versions/{v}]/stats): counts and total times in nanoseconds."""

from __future__ import annotations

import threading
import time


class VersionStats:
    """Counts and total times of one model version, as the statistics extension reports
    them (nanoseconds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.success = [0, 0]      # count, ns end to end
        self.fail = [0, 0]
        self.queue = [0, 0]
        self.compute = [0, 0]
        self.last_inference_ms = 0
        self.batches: dict[int, list[int]] = {}   # rows -> [count, ns], with batching

    def computed(self, seconds: float, ok: bool) -> None:
        """An instance finished a run (the scheduler's hook)."""
        with self._lock:
            self.compute[0] += 1
            self.compute[1] += int(seconds * 1e9)

    def batched(self, rows: int, seconds: float) -> None:
        """A batch of `rows` rows ran (the batcher's hook), for batch_stats."""
        with self._lock:
            pair = self.batches.setdefault(rows, [0, 0])
            pair[0] += 1
            pair[1] += int(seconds * 1e9)

    def finished(self, ok: bool, total_s: float, queue_s: float | None) -> None:
        """A request got its answer (success or failure) after `total_s` seconds."""
        with self._lock:
            target = self.success if ok else self.fail
            target[0] += 1
            target[1] += int(total_s * 1e9)
            if queue_s is not None:
                self.queue[0] += 1
                self.queue[1] += int(queue_s * 1e9)
            self.last_inference_ms = int(time.time() * 1e3)

    def as_dict(self, name: str, version: int) -> dict:
        def duration(pair: list[int]) -> dict:
            return {"count": pair[0], "ns": pair[1]}

        with self._lock:
            return {"name": name, "version": str(version),
                    "last_inference": self.last_inference_ms,
                    "inference_count": self.success[0], "execution_count": self.compute[0],
                    "inference_stats": {"success": duration(self.success),
                                        "fail": duration(self.fail),
                                        "queue": duration(self.queue),
                                        "compute_infer": duration(self.compute)},
                    "batch_stats": [{"batch_size": rows, "compute_infer": duration(pair)}
                                    for rows, pair in sorted(self.batches.items())]}
