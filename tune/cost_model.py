"""A cost model trained on the measurements as they arrive: it ranks the candidates the
search proposes, so the measured ones are those most likely to be fast.

One ridge regression per kernel, shared by every signature that kernel runs: it predicts
the log of a candidate's time relative to its signature's default schedule from each
schedule field (its log2 and the square of that, so an optimum inside the range can be
found) and from which signature it is (an offset each). What one signature teaches about
a kernel's fields (taller register tiles pay, bigger blocks do not) then guides the search
of the others from their first trials.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from .space import Candidate

#: Measurements a kernel needs before its model ranks candidates (before: random order).
MIN_SAMPLES = 4
RIDGE = 0.3


class CostModel:
    """log(seconds / default seconds) of a candidate, learnt per kernel."""

    def __init__(self) -> None:
        self._samples: dict[str, list[tuple[str, Candidate, float]]] = defaultdict(list)
        self._fitted: dict[str, tuple[list[str], np.ndarray]] = {}

    def add(self, signature: str, candidate: Candidate, ratio: float) -> None:
        """A measured candidate of `signature`: its time / the default schedule's."""
        if ratio > 0 and math.isfinite(ratio):
            self._samples[candidate.kernel].append((signature, candidate, math.log(ratio)))
            self._fitted.pop(candidate.kernel, None)

    def ready(self, kernel: str) -> bool:
        return len(self._samples[kernel]) >= MIN_SAMPLES

    def predict(self, signature: str, candidates: list[Candidate]) -> np.ndarray:
        """Predicted log time ratios (lower is faster); zeros where the model knows
        nothing yet."""
        out = np.zeros(len(candidates))
        for i, candidate in enumerate(candidates):
            if not self.ready(candidate.kernel):
                continue
            signatures, weights = self._fit(candidate.kernel)
            out[i] = float(self._features(signatures, signature, candidate) @ weights)
        return out

    def _fit(self, kernel: str) -> tuple[list[str], np.ndarray]:
        if kernel not in self._fitted:
            samples = self._samples[kernel]
            signatures = sorted({s for s, _, _ in samples})
            x = np.array([self._features(signatures, s, c) for s, c, _ in samples])
            y = np.array([target for _, _, target in samples])
            penalty = RIDGE * np.eye(x.shape[1])
            weights = np.linalg.solve(x.T @ x + penalty, x.T @ y)
            self._fitted[kernel] = (signatures, weights)
        return self._fitted[kernel]

    @staticmethod
    def _features(signatures: list[str], signature: str, candidate: Candidate) -> np.ndarray:
        offset = [1.0 if s == signature else 0.0 for s in signatures]
        logs = [math.log2(value + 1) for _, value in candidate.values]
        return np.array(offset + logs + [v * v for v in logs])
