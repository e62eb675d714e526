"""Artifacts that are safe to ship: session creation checks the instruction sets the code
was built for and refuses a CPU that lacks one with a status naming it, never SIGILL
(run here on an emulated older x86-64, QEMU's Haswell: AVX2, no AVX-512)."""

from __future__ import annotations

import platform
import shutil

from pathlib import Path

import numpy as np
import pytest

from kiln.compiler.errors import KilnError, RuntimeFailure
from kiln.driver import compile_detailed
from kiln.runtime import load
from check_models import checked_model
from reference import assert_matches, run_onnxruntime

x86_qemu = pytest.mark.skipif(
    platform.machine() != "x86_64" or shutil.which("qemu-x86_64") is None,
    reason="needs an x86-64 host with qemu-x86_64 (apt-get install qemu-user)")
FEED = {"x": np.random.default_rng(5).standard_normal((1, 3, 12, 12)).astype(np.float32)}


HOST_AVX512 = "avx512f" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() \
    else False


@x86_qemu
@pytest.mark.parametrize("cpu", [
    "znver4",
    # a Zen 5 host's native build checks 27 instruction sets: the longest message
    pytest.param("native", marks=pytest.mark.skipif(not HOST_AVX512,
                                                    reason="this host has no AVX-512"))])
def test_an_avx512_artifact_refuses_a_cpu_without_it(cpu, tmp_path):
    result = compile_detailed(checked_model(), output=tmp_path / "avx512.so", cpu=cpu)
    assert "avx512f" in result.checked_features
    with pytest.raises(RuntimeFailure) as failure:
        load(result.library, emulator="qemu", cpu="Haswell")
    message = str(failure.value)
    assert "unsupported CPU" in message and "avx512f" in message and "avx2" not in message
    assert message.rstrip().endswith("(--cpu x86-64-v3,x86-64-v4)"), message   # not cut off


@x86_qemu
def test_an_avx2_artifact_runs_there(tmp_path):
    result = compile_detailed(checked_model(), output=tmp_path / "v3.so", cpu="x86-64-v3")
    assert {"avx2", "fma"} <= set(result.checked_features)
    assert not any(f.startswith("avx512") for f in result.checked_features)
    with load(result.library, emulator="qemu", cpu="Haswell") as session:
        (actual,) = session.run(FEED).values()
    assert_matches(actual, run_onnxruntime(checked_model(), FEED)[0])


@x86_qemu
def test_a_multi_level_artifact_runs_its_best_level_everywhere(tmp_path):
    result = compile_detailed(checked_model(), output=tmp_path / "both.so",
                              cpu="x86-64-v3,x86-64-v4")
    (expected,) = run_onnxruntime(checked_model(), FEED)
    with load(result.library, emulator="qemu", cpu="Haswell") as session:   # v3 there
        assert_matches(session.run(FEED)["y"], expected)
        manifest = session.manifest
    with load(result.library) as session:   # this machine: v4 if it has AVX-512
        assert_matches(session.run(FEED)["y"], expected)
    levels = manifest["levels"]
    assert [(level["cpu"], level["vector_bits"]) for level in levels] == \
        [("x86-64-v3", 256), ("x86-64-v4", 512)]
    assert "avx512f" in levels[1]["features"] and "avx2" in levels[0]["features"]
    assert "avx512f" not in levels[0]["features"]


@pytest.mark.parametrize("cpu, emit, message", [
    ("x86-64-v3,x86-64-v3", "c", "distinct"), ("x86-64-v3,x86-64-v4", "llvm", "--emit c"),
    ("x86-64-v3,no-such-cpu", "c", "unknown --cpu")])
def test_bad_cpu_levels_are_clear_errors(cpu, emit, message, tmp_path):
    with pytest.raises(KilnError, match=message):
        compile_detailed(checked_model(), output=tmp_path / "m.so", cpu=cpu, emit=emit)


def test_emulating_a_cpu_needs_the_emulator(tmp_path):
    result = compile_detailed(checked_model(), output=tmp_path / "m.so")
    with pytest.raises(KilnError, match="emulator='qemu'"):
        load(result.library, cpu="Haswell")
