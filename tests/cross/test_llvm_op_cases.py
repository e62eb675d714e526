"""Every single-node op case, compiled with the LLVM IR renderer (--emit llvm) for the host,
matches its reference (ONNX Runtime, or the spec's numpy result)."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln.runtime import load
from op_cases import cases, reference_outputs
from reference import assert_matches

CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_llvm_op_case_matches_reference(case, tmp_path):
    library = kiln.compile(case.model, target="host", output=str(tmp_path / "op.so"),
                           dims=case.dims or None, emit="llvm", verify=True)
    expected = reference_outputs(case)
    with load(library, threads=1) as session:
        actual = session.run(case.inputs)
    assert list(actual) == list(expected)
    for name, value in expected.items():
        assert_matches(actual[name], np.asarray(value), what=f"{case.id}:{name}")
