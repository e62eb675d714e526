"""Inputs for a run when the user gives none: what `kiln run` and `kiln check` feed."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .loader import TensorInfo


def random_feed(inputs: Sequence[TensorInfo], given: Mapping[str, np.ndarray], seed: int,
                integer_high: int = 2) -> dict[str, np.ndarray]:
    """The feed of one run: the arrays `given`, and for every other input a seeded sample,
    standard normal for floats, integers in [0, integer_high) otherwise (kiln run: 0 or 1;
    kiln check: 1, zeros, which index any axis)."""
    rng = np.random.default_rng(seed)
    feed = {}
    for t in inputs:
        if t.name in given:
            feed[t.name] = given[t.name]
        elif np.issubdtype(t.dtype, np.floating):
            feed[t.name] = rng.standard_normal(t.shape).astype(t.dtype)
        else:
            feed[t.name] = rng.integers(0, integer_high, t.shape).astype(t.dtype)
    return feed
