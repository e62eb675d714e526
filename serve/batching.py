"""The dynamic batcher's arithmetic: how many rows a request carries, how a batch of rows is
cut into runs of the artifacts compiled for fixed batch sizes, and how the runs' outputs
are cut back into each request's answer. Pure functions of arrays (scheduler.py queues and
times them), so that each rule is testable on its own.

Kiln artifacts have static shapes, so a version that batches holds one artifact per batch
size (model.onnx compiled for each size the batcher may run, or model.so plus model.b{N}.so
files). A batch of R rows runs on the smallest size >= R, the rows past R padded with
zeros and their outputs dropped; a batch larger than every size (only possible when the
prebuilt sizes stop below max_batch_size) is cut into runs of the largest size first.
"""

from __future__ import annotations

import bisect
from typing import Mapping, Sequence

import numpy as np

from ..runtime import Session
from .errors import BadRequest


def request_rows(feed: Mapping[str, np.ndarray], max_batch_size: int, label: str) -> int:
    """The batch (dim 0) of a request's inputs: the same in every input, 1 to
    max_batch_size; BadRequest naming the input otherwise."""
    rows = None
    for name, array in feed.items():
        if array.ndim == 0:
            raise BadRequest(f"input {name!r} is a scalar, but {label} batches along dim 0 "
                             f"(max_batch_size {max_batch_size})")
        if rows is None:
            rows, first = array.shape[0], name
        elif array.shape[0] != rows:
            raise BadRequest(f"input {name!r} has batch (dim 0) {array.shape[0]} but input "
                             f"{first!r} has {rows}; every input of a request has the same "
                             f"batch")
    if rows is None or not 1 <= rows <= max_batch_size:
        raise BadRequest(f"the request's batch (dim 0) is {rows}, but {label} takes 1 to "
                         f"{max_batch_size} rows a request (its max_batch_size); split it "
                         f"into smaller requests")
    return rows


def plan_runs(rows: int, sizes: Sequence[int]) -> list[tuple[int, int]]:
    """How `rows` rows run on artifacts of batch `sizes` (ascending): a list of (artifact
    size, rows it computes); the smallest size that holds what is left, after runs of the
    largest size while nothing holds it."""
    runs = []
    while rows > 0:
        at = bisect.bisect_left(sizes, rows)
        if at < len(sizes):
            runs.append((sizes[at], rows))
            break
        runs.append((sizes[-1], sizes[-1]))
        rows -= sizes[-1]
    return runs


def run_joined(feeds: Sequence[Mapping[str, np.ndarray]], rows: Sequence[int],
               sessions: Mapping[int, Session], sizes: Sequence[int]
               ) -> tuple[list[dict[str, np.ndarray]], int]:
    """Run requests `feeds` (of `rows` rows each) as one batch on `sessions` (batch size ->
    session, `sizes` its keys ascending): concatenated along dim 0, cut by plan_runs, padded
    with zeros; returns each request's outputs (its own rows only) and the padded rows."""
    total = sum(rows)
    if len(feeds) == 1 and total in sessions:   # one request of a compiled size: as it is
        return [sessions[total].run(feeds[0])], 0
    joined = {name: np.concatenate([feed[name] for feed in feeds]) if len(feeds) > 1
              else feeds[0][name] for name in feeds[0]}
    pieces: dict[str, list[np.ndarray]] = {}
    offset = padded = 0
    for size, count in plan_runs(total, sizes):
        feed = {}
        for name, array in joined.items():
            part = array[offset:offset + count]
            if count < size:
                whole = np.zeros((size,) + array.shape[1:], array.dtype)
                whole[:count] = part
                part = whole
            feed[name] = part
        for name, output in sessions[size].run(feed).items():
            pieces.setdefault(name, []).append(output[:count])
        offset += count
        padded += size - count
    outputs = {name: parts[0] if len(parts) == 1 else np.concatenate(parts)
               for name, parts in pieces.items()}
    answers, offset = [], 0
    for count in rows:
        answers.append({name: array[offset:offset + count] for name, array in outputs.items()})
        offset += count
    return answers, padded
