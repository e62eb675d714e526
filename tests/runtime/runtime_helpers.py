"""Helpers for the runtime tests: build the hand-written fake model (fake_model.c) with the
real runtime into shared libraries, and compile small C programs against them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kiln.compiler.dtypes import DType
from kiln.runtime import ModelSpec, TensorSpec, render_header
from kiln.runtime.build import RUNTIME_SOURCES, runtime_cflags, runtime_ldflags

HERE = Path(__file__).resolve().parent
FAKE_MODEL_C = HERE / "fake_model.c"
C_DIR = HERE / "c"

FAKE_SPEC = ModelSpec(
    name="fake",
    inputs=(TensorSpec.of("x", DType.float32, (2, 3)), TensorSpec.of("k", DType.int64, (4,))),
    outputs=(TensorSpec.of("y", DType.float32, (2, 3)), TensorSpec.of("total", DType.int64, ())),
    workspace_size=128,
)

WARNINGS = ["-Wall", "-Wextra", "-Werror"]


def run_cmd(cmd, **kwargs) -> subprocess.CompletedProcess:
    """Run a command; fail the test with its output if it fails."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        pytest.fail(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
                    f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def build_model(cc: str, out_dir: Path, prefix: str = "kiln_", name: str = "fake",
                model_c: Path = FAKE_MODEL_C) -> Path:
    """Compile model_c + the runtime into out_dir/name.so and write out_dir/name.h."""
    so = out_dir / f"{name}.so"
    run_cmd([cc, "-O2", *WARNINGS, *runtime_cflags(prefix), model_c, *RUNTIME_SOURCES,
             *runtime_ldflags(), "-o", so])
    (out_dir / f"{name}.h").write_text(render_header(FAKE_SPEC, prefix, f"{name}.h"))
    return so


def build_program(cc: str, sources, out: Path, libs=(), include_dirs=()) -> Path:
    """Compile a C program, linking the given .so files (found beside each other)."""
    link = []
    for lib in libs:
        link += [f"-L{lib.parent}", f"-l:{lib.name}", f"-Wl,-rpath,{lib.parent}"]
    incs = [f"-I{d}" for d in include_dirs]
    run_cmd([cc, "-O2", "-std=c11", *WARNINGS, *incs, *sources, "-o", out, *link, "-pthread"])
    return out

