"""arm64 and riscv64-rvv as targets: the registry, the toolchain (zig cc, --cc, --cpu), the
artifacts' architecture, the loader's foreign-artifact message and emulated runs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest

import kiln
from kiln.compiler.errors import ArtifactError, KilnError, ToolchainError
from kiln.runtime import load
from kiln.runtime.elf import read_elf
from kiln.runtime.manifest import read_manifest
from kiln.targets import get_target
from kiln.targets.toolchain import compiler_command, cpu_flags, zig_cache_dir
from cross_helpers import (CROSS_TARGETS, EMITS, compile_cross, have_zig, require_emulator,
                           run_emulated, small_model)
from reference import assert_matches, run_onnxruntime


FEED = {"x": np.random.default_rng(2).standard_normal((1, 3, 9, 11)).astype(np.float32)}


def test_targets_are_registered_with_aliases():
    assert get_target("aarch64") is get_target("arm64")
    assert get_target("vpu") is get_target("riscv64-rvv")
    arm, rv = get_target("arm64"), get_target("vpu")
    assert (arm.elf_machine, arm.vector_isa, arm.toolchain) == ("aarch64", "NEON", "zig")
    assert (rv.elf_machine, rv.vector_length_agnostic) == ("riscv64", True)
    assert "2.36" in arm.zig_target and "+v" in rv.cpu


def test_kiln_targets_lists_them():
    out = subprocess.run([sys.executable, "-m", "kiln", "targets"], capture_output=True,
                         text=True, check=True).stdout
    assert "arm64 [aarch64]" in out and "riscv64-rvv [vpu" in out
    assert "arm64: planned" not in out and "cortex-a76" in out


@pytest.mark.skipif(not have_zig(), reason="needs zig: pip install ziglang")
def test_toolchain_commands():
    arm = get_target("arm64")
    command = compiler_command(arm)
    assert command[1:5] == ["-m", "ziglang", "cc", "-target"]
    assert "aarch64-linux-gnu.2.36" in command and "-mcpu=generic" in command
    assert cpu_flags(arm, "neoverse-n2") == ["-mcpu=neoverse_n2"]
    assert cpu_flags(get_target("vpu"), "vlen=512") == ["-mcpu=baseline_rv64+v+zvl512b"]
    with pytest.raises(ToolchainError, match="power of two"):
        cpu_flags(get_target("vpu"), "vlen=300")
    assert compiler_command(arm, cc="cc")[0].endswith("cc")     # --cc: the user's compiler
    assert zig_cache_dir().parts[-2:] == ("kiln", "zig")


@pytest.mark.skipif(not have_zig(), reason="needs zig: pip install ziglang")
@pytest.mark.parametrize("emit", EMITS)
@pytest.mark.parametrize("target", CROSS_TARGETS)
def test_artifact_is_built_for_the_target(target, emit, tmp_path):
    library = compile_cross(small_model(), target, emit, tmp_path)
    assert read_elf(library).arch == get_target(target).elf_machine
    with pytest.raises(ArtifactError, match="emulator='qemu'"):
        load(library)
    manifest = read_manifest(str(library))   # read from the file: nothing foreign runs
    assert manifest["target"]["name"] == get_target(target).name
    assert manifest["target"]["triple"] == get_target(target).triple
    assert manifest["options"]["emit"] == emit


@pytest.mark.parametrize("emit", EMITS)
@pytest.mark.parametrize("target", CROSS_TARGETS)
def test_emulated_run_matches_onnxruntime(target, emit, tmp_path):
    require_emulator(target)
    model = small_model()
    library = compile_cross(model, target, emit, tmp_path)
    with load(library, threads=2, emulator="qemu") as session:
        assert [(t.name, t.shape) for t in session.inputs] == [("x", (1, 3, 9, 11))]
        assert "EmulatedSession" in repr(session)
        first = session.run(FEED)
        second = session.run(FEED)          # one QEMU process serves every run
        assert session.manifest["inputs"] == [{"name": "x", "dtype": "float32",
                                               "shape": [1, 3, 9, 11]}]
    (expected,) = run_onnxruntime(model, FEED)
    assert_matches(first["y"], expected)
    np.testing.assert_array_equal(first["y"], second["y"])


def test_cpu_option_builds_for_a_core(tmp_path):
    require_emulator("arm64")
    library = compile_cross(small_model(), "arm64", "c", tmp_path, cpu="cortex-a76")
    (expected,) = run_onnxruntime(small_model(), FEED)
    assert_matches(run_emulated(library, FEED)["y"], expected)
    with pytest.raises(ToolchainError, match="common cores: .*cortex-a76"):
        compile_cross(small_model(), "arm64", "c", tmp_path, name="bad", cpu="no-such-core")


def test_emulator_errors(tmp_path):
    require_emulator("arm64")
    library = compile_cross(small_model(), "arm64", "c", tmp_path)
    with pytest.raises(KilnError, match="RISC-V"):
        load(library, emulator="qemu", vlen=256)
    native = tmp_path / "native.so"
    kiln.compile(small_model(), target="host", output=str(native))
    with pytest.raises(KilnError, match="without emulator="):
        load(native, emulator="qemu")
    with load(library, emulator="qemu") as session:
        with pytest.raises(KilnError, match="expected shape"):
            session.run({"x": np.zeros((1, 3, 9, 10), np.float32)})
    with pytest.raises(KilnError, match="closed"):
        session.run(FEED)


def test_cli_compile_and_run_emulated(tmp_path):
    require_emulator("riscv64-rvv")
    onnx.save(small_model(), str(tmp_path / "small.onnx"))
    np.save(tmp_path / "x.npy", FEED["x"])
    kiln_cli = [sys.executable, "-m", "kiln"]
    subprocess.run([*kiln_cli, "compile", str(tmp_path / "small.onnx"), "--target", "vpu",
                    "--emit", "llvm", "--cpu", "vlen=256", "-o", str(tmp_path / "small.so")],
                   check=True, capture_output=True)
    out = subprocess.run([*kiln_cli, "run", str(tmp_path / "small.so"), "--emulate",
                          "--vlen", "512", "--repeat", "1", "--input", f"x={tmp_path}/x.npy",
                          "--output-dir", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    (expected,) = run_onnxruntime(small_model(), FEED)
    assert_matches(np.load(tmp_path / "y.npy"), expected)
    refused = subprocess.run([*kiln_cli, "run", str(tmp_path / "small.so")],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "--emulate" in refused.stderr


@pytest.mark.skipif(not have_zig(), reason="needs zig: pip install ziglang")
@pytest.mark.parametrize("emit", EMITS)
def test_host_artifact_built_with_zig(emit, tmp_path):
    library = tmp_path / "zig.so"
    kiln.compile(small_model(), target="host", output=str(library), cc="zig", emit=emit)
    (expected,) = run_onnxruntime(small_model(), FEED)
    with load(library, threads=2) as session:
        assert_matches(session.run(FEED)["y"], expected)
