"""Bounded fuzzing (hypothesis): mutated small models (attributes, input shapes, dtypes,
opsets, initializers, serialized bytes) either compile and match ONNX Runtime or fail with a
KilnError; never a crash, never a C compiler error on generated code. The CI run is
derandomized; `python tests/hardening/fuzz_models.py --examples 2000` runs a longer, random
one."""

from __future__ import annotations

import collections

import pytest

from fuzz_models import SEEDS, check_mutant, fuzz


@pytest.mark.parametrize("seed", SEEDS, ids=[m.graph.name for m in SEEDS])
def test_every_seed_model_compiles_and_matches(seed):
    assert check_mutant(seed) == "match"


def test_mutated_models_match_or_fail_cleanly():
    outcomes: collections.Counter = collections.Counter()
    fuzz(60, True, outcomes)
    assert sum(outcomes.values()) >= 60
    assert outcomes["match"] > 0 and any(k.startswith("error:") for k in outcomes)
