"""Bounded fuzzing (hypothesis): mutated small models (attributes, input shapes, dtypes,
opsets, initializers, serialized bytes) either compile and match ONNX Runtime (as many outputs,
each within tolerance) or fail with a KilnError; never a crash, never a C compiler error on
generated code. A mutant Kiln compiles but ONNX Runtime refuses has no reference, and one
whose outputs are all empty compares nothing: both are counted apart, not as matches. The CI run is derandomized; `python
tests/hardening/fuzz_models.py --examples 2000` runs a longer, random one."""

from __future__ import annotations

import collections

import pytest

from fuzz_models import REFUSED, SEEDS, check_mutant, fuzz

#: The derandomized 60 mutants reach 15 matches with non-empty outputs (and 3 empty, 3
#: refused by ONNX Runtime; hypothesis 6.155): a floor with margin, so a run that compares
#: (almost) nothing fails.
MIN_MATCHES = 10


@pytest.mark.parametrize("seed", SEEDS, ids=[m.graph.name for m in SEEDS])
def test_every_seed_model_compiles_and_matches(seed):
    assert check_mutant(seed) == "match"


def test_mutated_models_match_or_fail_cleanly():
    outcomes: collections.Counter = collections.Counter()
    refused: list[str] = []
    fuzz(60, True, outcomes, refused)
    assert sum(outcomes.values()) >= 60
    assert outcomes["match"] >= MIN_MATCHES, outcomes
    assert any(k.startswith("error:") for k in outcomes), outcomes
    unreferenced = sum(v for k, v in outcomes.items() if k.startswith(REFUSED))
    assert unreferenced == len(refused)
    assert unreferenced <= outcomes["match"] // 3, refused   # most compiled mutants compared
