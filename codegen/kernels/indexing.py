"""Kernels that read or write through computed indices, and the data-dependent ones whose
output size is known only at run time (lower/indexing.py, data_dependent.py, unique.py)."""

from __future__ import annotations

from ..lower.data_dependent import lower_nms, lower_nonzero
from ..lower.indexing import (lower_gather_elements, lower_scan, lower_scatter_elements,
                              lower_scatter_nd, lower_topk)
from ..lower.unique import lower_unique
from .loops import loops, unscheduled

loops("gather_elements_loops", ("gather_elements",), "gather_elements along one axis",
      lower_gather_elements)
unscheduled("scatter_elements_loops", ("scatter_elements",),
            "a copy of the data, then the updates in order (with their reduction)",
            lower_scatter_elements)
unscheduled("scatter_nd_loops", ("scatter_nd",),
            "a copy of the data, then each update slice in order", lower_scatter_nd)
unscheduled("scan_loops", ("cumsum", "cumprod"), "running sums and products along one axis",
            lower_scan)
unscheduled("topk_loops", ("topk_values", "topk_indices"),
            "the k largest or smallest per row, each element written at its rank", lower_topk)
unscheduled("nonzero_loops", ("nonzero",), "indices of the nonzero elements, counted",
            lower_nonzero)
unscheduled("nms_loops", ("nms",), "greedy non-maximum suppression per batch and class",
            lower_nms)
unscheduled("unique_loops",
            ("unique_values", "unique_indices", "unique_inverse", "unique_counts"),
            "sorted or first-seen unique values, their indices, inverse and counts",
            lower_unique)
