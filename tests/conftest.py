"""Shared fixtures: compile a model into a temporary artifact and run it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

#: The tolerance DESIGN.md states for float32 models against ONNX Runtime.
RTOL, ATOL = 1e-3, 1e-4


def run_onnxruntime(model, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The reference: ONNX Runtime's CPU provider, basic optimizations only."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.intra_op_num_threads = 1
    data = model.SerializeToString() if not isinstance(model, (str, Path)) else str(model)
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def assert_matches(actual: np.ndarray, expected: np.ndarray, rtol: float = RTOL,
                   atol: float = ATOL, what: str = "output") -> None:
    """Floats within tolerance (NaN equal to NaN); integers and bools exactly."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if np.issubdtype(expected.dtype, np.floating):
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=what)
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=what)


@pytest.fixture
def compile_and_load(tmp_path):
    """compile_and_load(model, **compile_options) -> loaded Session."""
    import kiln
    from kiln.runtime import load

    sessions = []

    def build(model, name: str = "model", threads: int | None = 1, **options):
        library = kiln.compile(model, target="host", output=str(tmp_path / f"{name}.so"),
                               **options)
        session = load(library, threads=threads)
        sessions.append(session)
        return session

    yield build
    for session in sessions:
        session.close()
