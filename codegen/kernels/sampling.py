"""Resampling kernels: Resize and GridSample, each output element a weighted sum of taps
(lower/sampling.py)."""

from __future__ import annotations

from ..lower.sampling import lower_grid_sample, lower_resample
from .loops import loops

loops("resample_loops", ("resample",),
      "Resize: per-axis taps and weights from the importer, summed in one pass",
      lower_resample)
loops("grid_sample_loops", ("grid_sample",),
      "GridSample: bilinear, nearest or bicubic taps at the grid's coordinates",
      lower_grid_sample)
