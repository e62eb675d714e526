"""A failed download skips a test on a developer's machine and fails it in CI (KILN_CI)."""

from __future__ import annotations

import pytest

import pypi_models
from downloads import in_ci, missing_download


@pytest.mark.parametrize("value, ci", [("1", True), ("true", True), ("", False), ("0", False)])
def test_kiln_ci_decides(monkeypatch, value, ci):
    monkeypatch.setenv("KILN_CI", value)
    assert in_ci() is ci
    raised = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(raised, match="cannot fetch x"):
        missing_download("cannot fetch x")


def test_unreachable_registry_fails_a_real_model_test_in_ci(monkeypatch):
    def unreachable(name):
        raise pypi_models.RegistryUnreachable(f"cannot download {name}")

    monkeypatch.setattr(pypi_models, "real_model", unreachable)
    monkeypatch.setenv("KILN_CI", "1")
    with pytest.raises(pytest.fail.Exception, match="cannot download silero_vad"):
        pypi_models.require_real_model("silero_vad")
    monkeypatch.delenv("KILN_CI")
    with pytest.raises(pytest.skip.Exception, match="registry unreachable"):
        pypi_models.require_real_model("silero_vad")
