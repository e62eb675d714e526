"""The examples run on a real compiled CNN, as a user would run them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from reference import assert_model_output, model_scale, run_onnxruntime
from kiln import zoo

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, cwd=None):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def squeezenet(tmp_path_factory) -> Path:
    """SqueezeNet 1.1 compiled with the command line into model.so + model.h."""
    folder = tmp_path_factory.mktemp("squeezenet")
    onnx.save(zoo.load("squeezenet1_1"), str(folder / "squeezenet.onnx"))
    _run([sys.executable, "-m", "kiln", "compile", str(folder / "squeezenet.onnx"),
          "--target", "x86_64", "-o", str(folder / "model.so"), "--dim", "batch=1"])
    return folder


@pytest.mark.slow
def test_c_example_runs_a_compiled_cnn(squeezenet):
    cc = shutil.which("cc") or shutil.which("gcc")
    shutil.copy(ROOT / "examples" / "c" / "main.c", squeezenet)
    _run(["sh", "-c", f"{cc} -O2 -std=c11 main.c -I. -L. -l:model.so "
                      "-Wl,-rpath,'$ORIGIN' -o main"], cwd=squeezenet)
    out = _run(["./main", "2"], cwd=squeezenet)
    assert "input  input: float32 [1, 3, 224, 224]" in out
    line = next(l for l in out.splitlines() if l.startswith("output output: float32 [1, 1000]"))
    printed = np.array([float(v) for v in line.split("=")[1].split()[:8]])
    # main.c's input pattern: element i is ((7 i) % 17 - 8) / 8
    i = np.arange(3 * 224 * 224)
    x = (((i * 7) % 17 - 8) / 8).astype(np.float32).reshape(1, 3, 224, 224)
    (expected,) = run_onnxruntime(str(squeezenet / "squeezenet.onnx"), {"input": x})
    assert_model_output(printed, expected.ravel()[:8].astype(np.float64),
                        scale=model_scale(expected), what="main.c's first values")


@pytest.mark.slow
def test_python_example_matches_onnxruntime(squeezenet):
    out = _run([sys.executable, str(ROOT / "examples" / "python" / "run_model.py"),
                str(squeezenet / "model.so"), "--onnx", str(squeezenet / "squeezenet.onnx")])
    assert "output" in out


@pytest.mark.slow
def test_quickstart(tmp_path):
    out = _run([sys.executable, "-m", "kiln.quickstart", "--model", "squeezenet1_1",
                "--runs", "2", "--out", str(tmp_path)])
    assert "(match)" in out


def test_quickstart_script_runs_the_module():
    """examples/python/quickstart.py, from a checkout, is `python -m kiln.quickstart`."""
    out = _run([sys.executable, str(ROOT / "examples" / "python" / "quickstart.py"), "--help"])
    assert "Quickstart: compile a real CNN" in out and "--model" in out


@pytest.mark.skipif(shutil.which("ldd") is None, reason="needs ldd (Debian libc-bin)")
def test_artifact_needs_only_libc(squeezenet):
    out = _run(["ldd", str(squeezenet / "model.so")])
    allowed = ("linux-vdso", "libc.so", "libm.so", "libpthread.so", "ld-linux")
    for line in out.strip().splitlines():
        assert any(name in line for name in allowed), f"unexpected dependency: {line}"
