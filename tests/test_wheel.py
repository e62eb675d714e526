"""Kiln installed from its wheel, not from the checkout: build the wheel, install it into a
fresh virtual environment (no system site-packages; dependencies from the package index,
through pip's cache), and from a folder outside the checkout run `kiln --version`, the
quickstart (`python -m kiln.quickstart`, compared with ONNX Runtime) and a static-library
compile, each with the installed package's data (runtime C sources, templates, zoo models)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parents[1]

#: What the wheel must carry beside the Python modules: every artifact's C runtime, the
#: code and header templates, the example models, and the server's gRPC descriptors.
REQUIRED = ["kiln/runtime/kiln_runtime.c", "kiln/runtime/kiln_pool.c", "kiln/runtime/kiln_abi.h",
            "kiln/runtime/kiln_model.h", "kiln/runtime/templates/header.h.j2",
            "kiln/codegen/templates/model.c.j2", "kiln/zoo/data/squeezenet1_1.onnx",
            "kiln/quickstart.py", "kiln/cli.py",
            "kiln/serve/inference.proto", "kiln/serve/inference.binpb"]   # the gRPC API


def _run(cmd, **kwargs) -> str:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                            timeout=600, **kwargs)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    pytest.importorskip("build", reason="needs the 'build' package (the test extra)")
    # build from a copy: setuptools writes build/ and *.egg-info into the source folder
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"))
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", tmp_path / "dist", source])
    (wheel,) = (tmp_path / "dist").glob("kiln_aot-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    missing = [name for name in REQUIRED if name not in names]
    assert not missing, f"the wheel lacks {missing}"
    stray = [n for n in names if n.startswith(("kiln/tests/", "kiln/docs/", "kiln/examples/"))
             or not n.startswith(("kiln/", "kiln_aot-"))]
    assert not stray, f"the wheel ships {stray[:10]}"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])
    python, kiln = venv / "bin" / "python", venv / "bin" / "kiln"
    _run([python, "-m", "pip", "install", "-q", wheel, "onnxruntime"])

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    where = _run([python, "-c", "import kiln; print(kiln.__file__)"], cwd=outside, env=env)
    assert where.startswith(str(venv)), where
    assert _run([kiln, "--version"], cwd=outside, env=env).strip().startswith("kiln ")

    out = _run([python, "-m", "kiln.quickstart", "--model", "squeezenet1_1", "--runs", "2",
                "--out", "q"], cwd=outside, env=env)
    assert "(match)" in out, out
    assert (outside / "q" / "squeezenet1_1.so").exists()

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
              str(outside / "relu.onnx"))
    _run([kiln, "compile", "relu.onnx", "-o", "relu.a"], cwd=outside, env=env)
    for name in ("relu.a", "relu.h", "relu-config.cmake", "relu.pc"):
        assert (outside / name).exists(), name
