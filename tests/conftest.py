"""Shared fixtures: compile a model into a temporary artifact and run it. Also makes tests/
importable as a plain folder (shared helpers: reference, models, op_cases)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def compile_and_load(tmp_path):
    """compile_and_load(model, **compile_options) -> loaded Session."""
    import kiln
    from kiln.runtime import load

    sessions = []

    def build(model, name: str = "model", threads: int | None = 1, **options):
        options.setdefault("verify", True)   # the IR verifier after every pass
        library = kiln.compile(model, target="host", output=str(tmp_path / f"{name}.so"),
                               **options)
        session = load(library, threads=threads)
        sessions.append(session)
        return session

    yield build
    for session in sessions:
        session.close()
