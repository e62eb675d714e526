"""Calibration samples: a .npz file or a dict of arrays, one per model input, the first axis
the sample index and the rest the input's pinned shape; every mistake a clear error before
anything is built."""

from __future__ import annotations

import difflib
import os
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from ..compiler.errors import KilnError
from ..compiler.ir import Value


class CalibrationError(KilnError, ValueError):
    """The calibration samples do not fit the model, or hold no usable data."""


def read_samples(calibration: Any) -> dict[str, np.ndarray]:
    """The arrays of a .npz path or of a {name: array} mapping."""
    if isinstance(calibration, (str, os.PathLike)):
        path = Path(calibration)
        if not path.is_file():
            raise CalibrationError(f"calibration file '{path}' does not exist")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise CalibrationError(f"calibration file '{path}' is not a .npz of arrays "
                                   f"(np.savez(path, input=samples)): {exc}") from None
        where = f"calibration file '{path}'"
    elif isinstance(calibration, Mapping):
        arrays = {str(k): np.asarray(v) for k, v in calibration.items()}
        where = "the calibration samples"
    else:
        raise CalibrationError(f"calibration must be a .npz path or a dict of arrays, not "
                               f"{type(calibration).__name__}")
    if not arrays:
        raise CalibrationError(f"{where} hold no arrays: give one array per model input, "
                               f"samples along the first axis")
    return arrays


def _expected(inputs: list[Value]) -> str:
    return ", ".join(f"{v.name}: [N, {', '.join(map(str, v.shape))}] {v.dtype.name}"
                     for v in inputs)


def check_samples(arrays: Mapping[str, np.ndarray], inputs: list[Value]) -> dict[str, np.ndarray]:
    """The samples cast to the inputs' dtypes, after checking names, shapes, sample counts
    and values (no NaN or infinity)."""
    names = [v.name for v in inputs]
    unknown = [n for n in arrays if n not in names]
    missing = [n for n in names if n not in arrays]
    if unknown or missing:
        parts = []
        for name in unknown:
            close = difflib.get_close_matches(name, names, n=1)
            parts.append(f"'{name}' is no input of the model"
                         + (f" (did you mean '{close[0]}'?)" if close else ""))
        parts += [f"input '{n}' has no samples" for n in missing]
        raise CalibrationError(f"calibration samples do not match the model: "
                               f"{'; '.join(parts)}; the inputs are {_expected(inputs)}")
    checked = {}
    counts = set()
    for value in inputs:
        array = np.asarray(arrays[value.name])
        if array.ndim != value.type.rank + 1 or tuple(array.shape[1:]) != value.shape:
            raise CalibrationError(
                f"calibration samples of '{value.name}' have shape {list(array.shape)}; the "
                f"model takes [{', '.join(map(str, value.shape))}] per sample, so give "
                f"[N, {', '.join(map(str, value.shape))}] (N samples along the first axis)")
        if array.shape[0] == 0:
            raise CalibrationError(f"calibration samples of '{value.name}' are empty (0 "
                                   f"samples): give at least one")
        want = value.dtype.numpy
        if array.dtype.kind not in ("f" if np.dtype(want).kind == "f" else "iub"):
            raise CalibrationError(f"calibration samples of '{value.name}' are {array.dtype}; "
                                   f"the input is {value.dtype.name}")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            bad = int(np.count_nonzero(~np.isfinite(array)))
            raise CalibrationError(f"calibration samples of '{value.name}' hold {bad} NaN or "
                                   f"infinite value(s): calibration needs finite data")
        counts.add(array.shape[0])
        checked[value.name] = np.ascontiguousarray(array.astype(want, copy=False))
    if len(counts) > 1:
        raise CalibrationError(f"calibration inputs hold different numbers of samples "
                               f"({', '.join(f'{k}: {v.shape[0]}' for k, v in checked.items())})")
    return checked


def count(samples: Mapping[str, np.ndarray]) -> int:
    return next(iter(samples.values())).shape[0]


def feeds(samples: Mapping[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """One feed per sample, in order."""
    for i in range(count(samples)):
        yield {name: array[i] for name, array in samples.items()}
