"""Fixtures for the runtime tests (helpers in runtime_helpers.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runtime_helpers import build_model


@pytest.fixture(scope="session")
def cc() -> str:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler (cc) on this machine")
    return compiler


@pytest.fixture(scope="session")
def fake_so(cc, tmp_path_factory) -> Path:
    """The fake model with the default prefix kiln_, and its header fake.h beside it."""
    return build_model(cc, tmp_path_factory.mktemp("fake"))
