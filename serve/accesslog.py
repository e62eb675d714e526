"""Structured access logs (kiln serve --access-log): one JSON object a line per inference
request, to stderr or appended to a file, written as the answer goes out.

    {"time": "2026-12-04T19:30:01.123456Z", "model": "resnet", "version": "2",
     "status": 200, "queue_ms": 0.412, "compute_ms": 3.1, "batch_size": 4}

`version` is null when the request named no version and none could be chosen; the
timings and batch size are null when the request was not computed (refused, invalid,
timed out in the queue). `batch_size` is the rows of the batch the request ran in.
"""

from __future__ import annotations

import datetime
import json
import sys
import threading
from typing import IO

from .errors import ConfigError

#: `--access-log -` writes to stderr.
STDERR = "-"


class AccessLog:
    """Writes access records to `target`: a file path (appended to) or STDERR."""

    def __init__(self, target: str):
        self.target = target
        self._lock = threading.Lock()
        if target == STDERR:
            self._stream: IO[str] = sys.stderr
            self._owned = False
        else:
            try:
                self._stream = open(target, "a", encoding="utf-8", buffering=1)
            except OSError as exc:
                raise ConfigError(f"--access-log: cannot open {target} for appending: "
                                  f"{exc}") from None
            self._owned = True

    def write(self, model: str, version: str | None, status: int, queue_s: float | None,
              compute_s: float | None, batch_size: int | None) -> None:
        """Log one answered inference request."""
        record = {"time": datetime.datetime.now(datetime.timezone.utc)
                  .isoformat(timespec="microseconds").replace("+00:00", "Z"),
                  "model": model, "version": version, "status": status,
                  "queue_ms": None if queue_s is None else round(queue_s * 1e3, 3),
                  "compute_ms": None if compute_s is None else round(compute_s * 1e3, 3),
                  "batch_size": batch_size}
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            self._stream.write(line)

    def close(self) -> None:
        """Close the file (stderr stays open)."""
        if self._owned:
            with self._lock:
                self._stream.close()
