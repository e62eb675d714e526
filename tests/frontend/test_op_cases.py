"""Every single-node case in tests/op_cases.py: import, interpret, compare with the reference
(ONNX Runtime, or the case's own expected outputs for opsets it cannot run)."""

from __future__ import annotations

import numpy as np
import pytest

from kiln.compiler.interpret import run_graph
from kiln.compiler.verifier import verify
from kiln.frontends.onnx import import_model

from op_cases import cases, reference_outputs

CASES = cases()


def assert_matches(actual: dict, expected: dict, case_id: str) -> None:
    assert list(actual) == list(expected), f"{case_id}: outputs {list(actual)} vs {list(expected)}"
    for name, want in expected.items():
        got = actual[name]
        want = np.asarray(want)
        assert got.shape == want.shape, f"{case_id}/{name}: shape {got.shape} vs {want.shape}"
        assert got.dtype == want.dtype, f"{case_id}/{name}: dtype {got.dtype} vs {want.dtype}"
        if want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4, err_msg=case_id)
        else:
            np.testing.assert_array_equal(got, want, err_msg=case_id)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op_case(case):
    graph = verify(import_model(case.model, dims=case.dims))
    actual = run_graph(graph, case.inputs)
    assert_matches(actual, reference_outputs(case), case.id)
