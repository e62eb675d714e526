"""`kiln check` for a foreign target: the cuts run under QEMU and the injected fault is found."""

from __future__ import annotations

from kiln.check import check_model
from check_models import checked_model
from cross_helpers import require_emulator


def test_check_under_emulation_finds_the_fault():
    require_emulator("arm64")
    report = check_model(checked_model(), target="arm64", perturb="pool")
    assert report.target == "arm64"
    assert not report.ok and (report.divergence.node, report.divergence.op) == ("pool", "GlobalAveragePool")
    clean = check_model(checked_model(), target="arm64")
    assert clean.ok
