"""`kiln check`: a clean bill for a model Kiln compiles right, and the first diverging node
named when a fault is injected into what Kiln compiles (ONNX Runtime is the reference)."""

from __future__ import annotations

import numpy as np
import onnx

from kiln.check import check_model, compare
from kiln.cli import main
from check_models import branching_model, checked_model


def test_a_correct_model_gets_a_clean_bill(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(checked_model(), path)
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "output y: matches ONNX Runtime" in out and "clean bill" in out


def test_an_injected_fault_is_found_at_its_node(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(checked_model(), path)
    assert main(["check", str(path), "--perturb", "pool"]) == 1
    out = capsys.readouterr().out
    assert "output y: DIFFERS" in out
    assert "first diverging node: pool (GlobalAveragePool)" in out
    assert "input r: [1, 8, 12, 12] float32" in out


def test_the_report_names_the_group_and_kernel():
    report = check_model(checked_model(), perturb="relu")
    d = report.divergence
    assert (d.node, d.op) == ("relu", "Relu")
    assert d.group == "conv" and d.kernel.startswith("conv_")   # relu runs fused in the conv
    assert d.mismatches[0].name == "r" and d.mismatches[0].error >= 0.99


def test_a_fault_on_one_branch_is_found_past_the_clean_other_branch():
    report = check_model(branching_model(), perturb="left1")
    assert report.divergence.node == "left1", report.divergence


def test_compare_judges_errors_against_the_output_scale():
    expected = np.array([1000.0, -2000.0, 0.0], np.float32)
    assert compare("t", expected + np.float32(0.05), expected) is None    # 2.5e-5 of scale
    assert compare("t", expected + np.float32(1.0), expected) is not None
    tiny = np.full(4, 1e-7, np.float32)
    assert compare("t", np.zeros(4, np.float32), tiny) is not None    # all-zero output caught
    assert compare("t", np.array([np.nan]), np.array([np.nan])) is None
    assert compare("i", np.array([1, 2]), np.array([1, 3])) is not None
