"""The references tests compare against, and how they compare."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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


def assert_close_to_scale(actual: np.ndarray, expected: np.ndarray, rel: float = 1e-3,
                          what: str = "output") -> None:
    """The largest error is small next to the output's own magnitude: catches a wrong
    answer even where outputs are so small that the absolute tolerance alone would pass."""
    scale = float(np.abs(expected).max())
    error = float(np.abs(actual.astype(np.float64) - expected).max())
    assert error <= rel * scale, f"{what}: max error {error:.3g} vs output scale {scale:.3g}"
