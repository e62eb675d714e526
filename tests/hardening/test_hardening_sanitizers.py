"""`kiln compile --sanitize`: artifacts built with AddressSanitizer and UBSan run every op case
and a CNN in a child process with the sanitizer runtime preloaded, with zero reports and the
reference's results."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kiln
from kiln import zoo
from kiln.cli import main
from op_cases import cases, reference_outputs
from reference import assert_matches, assert_model_output, run_onnxruntime
from sanitized_run import REPORT_MARKERS, sanitizer_env

RUNNER = Path(__file__).resolve().parent / "sanitized_run.py"
CASES = cases()
SHARDS = 12


@pytest.fixture(scope="module")
def env():
    found = sanitizer_env()
    if found is None:
        pytest.skip("gcc's libasan.so is not installed (Debian: libasan8)")
    return found


def _build(folder: Path, stem: str, model, feed, dims=None) -> None:
    kiln.compile(model, output=str(folder / f"{stem}.so"), dims=dims or None, sanitize=True)
    (folder / f"{stem}.in.pkl").write_bytes(pickle.dumps(feed))


def _run_sanitized(folder: Path, env) -> None:
    result = subprocess.run([sys.executable, str(RUNNER), str(folder)], env=env,
                            capture_output=True, text=True, timeout=1200)
    reports = [m for m in REPORT_MARKERS if m in result.stderr]
    assert result.returncode == 0 and not reports, result.stderr[-4000:]


def _outputs(folder: Path, stem: str) -> dict:
    return pickle.loads((folder / f"{stem}.out.pkl").read_bytes())


def _check_cases(selected, folder: Path, env) -> None:
    for index, case in selected:
        _build(folder, f"case{index}", case.model, case.inputs, case.dims)
    _run_sanitized(folder, env)
    for index, case in selected:
        actual = _outputs(folder, f"case{index}")
        for name, value in reference_outputs(case).items():
            assert_matches(actual[name], np.asarray(value), what=f"{case.id}:{name}")


def test_sanitized_sample_of_op_cases(env, tmp_path):
    _check_cases(list(enumerate(CASES))[::47], tmp_path, env)


@pytest.mark.slow
@pytest.mark.parametrize("shard", range(SHARDS))
def test_sanitized_op_cases(env, tmp_path, shard):
    _check_cases(list(enumerate(CASES))[shard::SHARDS], tmp_path, env)


@pytest.mark.slow
def test_sanitized_cnn(env, tmp_path):
    model = zoo.load("squeezenet1_1")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    name = model.graph.input[0].name
    _build(tmp_path, "squeezenet", model, {name: x}, {"batch": 1})
    _run_sanitized(tmp_path, env)
    (expected,) = run_onnxruntime(model, {name: x})
    (actual,) = _outputs(tmp_path, "squeezenet").values()
    assert_model_output(actual, expected, what="sanitized squeezenet")


def test_sanitize_flag_on_the_command_line(env, tmp_path, capsys):
    case = CASES[0]
    path = tmp_path / "case.onnx"
    path.write_bytes(case.model.SerializeToString())
    assert main(["compile", str(path), "-o", str(tmp_path / "case.so"), "--sanitize"]) == 0
    needed = subprocess.run(["readelf", "-d", str(tmp_path / "case.so")], capture_output=True,
                            text=True).stdout
    assert "libasan" in needed and "libubsan" in needed
    (tmp_path / "case.in.pkl").write_bytes(pickle.dumps(case.inputs))
    _run_sanitized(tmp_path, env)


def test_sanitizer_catches_an_out_of_bounds_read(env, tmp_path):
    """The harness itself: a run that reads past a buffer is reported, not missed."""
    bad = tmp_path / "bad.c"
    bad.write_text("#include <stdlib.h>\nint peek(int i) { int *p = malloc(16); int v = p[i];"
                   " free(p); return v; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-fsanitize=address", str(bad), "-o",
                    str(tmp_path / "libbad.so")], check=True)
    script = ("import ctypes, sys; ctypes.CDLL(sys.argv[1]).peek(9)")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "libbad.so")],
                            env=env, capture_output=True, text=True)
    assert result.returncode != 0 and any(m in result.stderr for m in REPORT_MARKERS)
