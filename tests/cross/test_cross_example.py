"""examples/c/main.c, built for each cross target with the commands examples/README.md gives
(kiln compile --target T; zig cc -target ...), runs under QEMU and prints ONNX Runtime's
values."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from cross_helpers import CROSS_TARGETS, require_emulator, small_model
from kiln.runtime.emulate import qemu_command
from kiln.targets import get_target
from kiln.targets.toolchain import toolchain_env
from reference import run_onnxruntime

ROOT = Path(__file__).resolve().parents[2]


def _run(command, cwd):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                            env=toolchain_env())
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.parametrize("target", CROSS_TARGETS)
def test_c_example_runs_on_each_target(target, tmp_path):
    require_emulator(target)
    spec = get_target(target)
    onnx.save(small_model(), str(tmp_path / "small.onnx"))
    shutil.copy(ROOT / "examples" / "c" / "main.c", tmp_path)
    _run([sys.executable, "-m", "kiln", "compile", "small.onnx", "--target", target,
          "-o", "model.so"], tmp_path)
    _run([sys.executable, "-m", "ziglang", "cc", "-target", spec.zig_target, "-O2",
          "-std=c11", "main.c", "-I.", "-L.", "-l:model.so", "-Wl,-rpath,$ORIGIN", "-o", "main"],
         tmp_path)
    out = _run([*qemu_command(spec), "./main", "2"], tmp_path)
    line = next(l for l in out.splitlines() if l.startswith("output y: float32 [1, 4, 9, 11]"))
    printed = np.array([float(v) for v in line.split("=")[1].split()[:8]])
    i = np.arange(3 * 9 * 11)                 # main.c's input: element i is ((7 i) % 17 - 8) / 8
    x = (((i * 7) % 17 - 8) / 8).astype(np.float32).reshape(1, 3, 9, 11)
    (expected,) = run_onnxruntime(small_model(), {"x": x})
    np.testing.assert_allclose(printed, expected.ravel()[:8], rtol=1e-4, atol=1e-5)
