"""The references tests compare against, and how they compare."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: The tolerance DESIGN.md states for float32 models against ONNX Runtime.
RTOL, ATOL = 1e-3, 1e-4

#: A model's float output whose standard deviation is below this is degenerate: its weights
#: make the signal vanish (as the plain refill did to MobileNetV2: ~1e-7), and an all-zeros
#: answer would be as close to it as the right one.
MIN_MODEL_STD = 1e-2


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


def model_scale(expected: np.ndarray, min_std: float = MIN_MODEL_STD,
                what: str = "output") -> float:
    """A model output's scale, max|expected|, once it is seen to be realistic: finite, with
    a standard deviation of at least `min_std`."""
    reference = np.asarray(expected, np.float64)
    assert np.isfinite(reference).all(), f"{what}: the reference is not finite"
    std = float(reference.std()) if reference.size else 0.0
    assert std >= min_std, (f"{what}: degenerate reference (std {std:.3g} < {min_std:g}): "
                            "an all-zeros answer would pass against it")
    return float(np.abs(reference).max())


def assert_model_output(actual: np.ndarray, expected: np.ndarray, rtol: float = RTOL,
                        atol: float = ATOL, what: str = "output", scale: float | None = None,
                        min_std: float = MIN_MODEL_STD) -> None:
    """A whole model's output against the reference, judged on the output's own scale.

    Floats: every element within `rtol` of itself plus `atol` of the scale (max|expected|,
    or `scale` when `expected` is a part of a larger output whose scale the caller took),
    and the answer's standard deviation within 1% of the reference's; the reference must not
    be degenerate (`model_scale`), so an all-zeros answer never passes. Integers and bools
    exactly."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if not np.issubdtype(expected.dtype, np.floating):
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    whole = scale is None
    if whole:
        scale = model_scale(expected, min_std, what)
    answer, reference = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert np.isfinite(answer).all(), f"{what}: the answer is not finite"
    error = np.abs(answer - reference)
    excess = error - (rtol * np.abs(reference) + atol * scale)
    worst = int(np.argmax(excess))
    assert excess.flat[worst] <= 0, (
        f"{what}: {int((excess > 0).sum())} of {excess.size} elements off; worst at "
        f"{np.unravel_index(worst, excess.shape)}: {answer.flat[worst]:.6g} vs "
        f"{reference.flat[worst]:.6g}; max error {error.max():.3g}, output scale {scale:.3g}")
    if whole:
        ratio = answer.std() / reference.std()
        assert abs(ratio - 1) <= 0.01, f"{what}: answer's std {ratio:.4g} x the reference's"
