"""A spread of the single-node op cases (every 10th for arm64 with the C renderer, every 20th
for riscv64-rvv with the LLVM renderer) run under QEMU and match their references. All op
cases go through the LLVM renderer on the host in test_llvm_op_cases.py."""

from __future__ import annotations

import numpy as np
import pytest

from cross_helpers import compile_cross, require_emulator, run_emulated, skip_known_qemu_bugs
from op_cases import cases, reference_outputs
from reference import assert_matches

CASES = cases()
SUBSETS = ([("arm64", "c", c) for c in CASES[::10]]
           + [("riscv64-rvv", "llvm", c) for c in CASES[5::20]])


@pytest.mark.parametrize("target, emit, case", SUBSETS,
                         ids=[f"{t}-{e}-{c.id}" for t, e, c in SUBSETS])
def test_cross_op_case_matches_reference(target, emit, case, tmp_path):
    require_emulator(target)
    library = compile_cross(case.model, target, emit, tmp_path, dims=case.dims or None)
    skip_known_qemu_bugs(target, library)
    expected = reference_outputs(case)
    actual = run_emulated(library, case.inputs, threads=1)
    assert list(actual) == list(expected)
    for name, value in expected.items():
        assert_matches(actual[name], np.asarray(value), what=f"{target}:{case.id}:{name}")
