"""Every single-node op case, compiled to an artifact and run, matches its reference
(ONNX Runtime, or the spec's numpy result where ONNX Runtime has no kernel)."""

from __future__ import annotations

import numpy as np
import pytest

from op_cases import cases, reference_outputs
from reference import assert_matches

CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op_artifact_matches_reference(case, compile_and_load):
    session = compile_and_load(case.model, dims=case.dims or None)
    expected = reference_outputs(case)
    actual = session.run(case.inputs)
    assert list(actual) == list(expected)
    for name, value in expected.items():
        assert_matches(actual[name], np.asarray(value), what=f"{case.id}:{name}")
