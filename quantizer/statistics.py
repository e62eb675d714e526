"""The range calibration gives each quantized tensor, from its values over the samples.

    minmax      the smallest and largest value seen
    percentile  the 0.01th and 99.99th percentiles: a few outliers do not stretch the range
    entropy     the clipping threshold whose 8-bit histogram keeps the most information (the
                KL divergence between the tensor's histogram and its quantized form is
                least), as TensorRT's entropy calibrator chooses it

minmax needs one run over the samples; the others a second, which fills a histogram of each
tensor over the range the first found.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import numpy as np

METHODS = ("minmax", "percentile", "entropy")
#: histogram bins over a tensor's range (percentile, entropy)
BINS = 2048
#: the share of values left out at each end by percentile
TAIL = 1e-4
#: the quantized levels entropy compares against (uint8 over a one-signed range)
LEVELS = 255


class RangeStatistics:
    """Accumulates each tensor's range, then (second pass) its histogram."""

    def __init__(self) -> None:
        self.low: dict[str, float] = {}
        self.high: dict[str, float] = {}
        self.hist: dict[str, np.ndarray] = {}

    def see_range(self, values: Mapping[str, np.ndarray]) -> None:
        for name, array in values.items():
            low, high = float(array.min()), float(array.max())
            self.low[name] = min(low, self.low.get(name, low))
            self.high[name] = max(high, self.high.get(name, high))

    def see_histogram(self, values: Mapping[str, np.ndarray]) -> None:
        for name, array in values.items():
            low, high = self._span(name)
            counts, _ = np.histogram(array, BINS, (low, high))
            self.hist[name] = self.hist.get(name, 0) + counts

    def _span(self, name: str) -> tuple[float, float]:
        low, high = min(self.low[name], 0.0), max(self.high[name], 0.0)
        return (low, high) if high > low else (low, low + 1.0)

    def ranges(self, method: str) -> dict[str, tuple[float, float]]:
        """(low, high) per tensor as `method` chooses it."""
        if method == "minmax":
            return {n: (self.low[n], self.high[n]) for n in self.low}
        choose = _percentile if method == "percentile" else _entropy
        return {n: choose(self.hist[n], *self._span(n)) for n in self.low}


def _edges(low: float, high: float) -> np.ndarray:
    return np.linspace(low, high, BINS + 1)


def _percentile(hist: np.ndarray, low: float, high: float) -> tuple[float, float]:
    cdf = np.cumsum(hist) / max(hist.sum(), 1)
    edges = _edges(low, high)
    first = int(np.searchsorted(cdf, TAIL))
    last = int(np.searchsorted(cdf, 1 - TAIL))
    return float(min(edges[first], 0.0)), float(max(edges[min(last + 1, BINS)], 0.0))


def _kl(p: np.ndarray, kept: np.ndarray, levels: int) -> float:
    """KL(p || q): p the histogram with what lies beyond the threshold folded into its last
    bin, q the bins kept (without the fold) merged into `levels` equal runs and spread back
    over each run's non-empty bins, as an 8-bit tensor clipped there would hold them."""
    q = np.zeros_like(p)
    for chunk in np.array_split(np.arange(p.size), levels):
        part = kept[chunk]
        used = part > 0
        if used.any():
            q[chunk[used]] = part.sum() / used.sum()
    p_sum, q_sum = p.sum(), q.sum()
    if p_sum == 0 or q_sum == 0:
        return 0.0
    p, q = p / p_sum, q / q_sum
    used = p > 0
    return float(np.sum(p[used] * np.log(p[used] / np.maximum(q[used], 1e-12))))


def _entropy(hist: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """The clipping of |x| that keeps most information: for each candidate threshold the
    bins beyond it are folded into the last one kept."""
    edges = _edges(low, high)
    centres = (edges[:-1] + edges[1:]) / 2
    peak = max(-low, high)
    magnitude, _ = np.histogram(np.abs(centres), BINS, (0.0, peak), weights=hist)
    levels = LEVELS if low >= 0 or high <= 0 else LEVELS // 2
    best, best_kl = BINS, np.inf
    for stop in range(levels, BINS + 1, BINS // 64):
        kept = magnitude[:stop].astype(np.float64)
        p = kept.copy()
        p[-1] += magnitude[stop:].sum()
        kl = _kl(p, kept, levels)
        if kl < best_kl:
            best, best_kl = stop, kl
    threshold = peak * best / BINS
    return float(max(low, -threshold)), float(min(high, threshold))


def calibrate(run: Callable[[], Iterable[Mapping[str, np.ndarray]]], method: str
              ) -> dict[str, tuple[float, float]]:
    """The ranges `method` gives the tensors `run()` yields (once per sample; called twice
    where the method needs a histogram)."""
    stats = RangeStatistics()
    for values in run():
        stats.see_range(values)
    if method != "minmax":
        for values in run():
            stats.see_histogram(values)
    return stats.ranges(method)
