"""The layers contract in pyproject.toml ([tool.importlinter]) holds, and it is not vacuous:
a copy of the package with one import against the layering fails it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lint(package_parent: Path) -> subprocess.CompletedProcess:
    """lint-imports over the `kiln` package found in `package_parent`."""
    env = dict(os.environ, PYTHONPATH=str(package_parent))
    command = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"
    return subprocess.run([sys.executable, "-c", command, "--no-cache", str(ROOT / "pyproject.toml")],
                          capture_output=True, text=True, env=env, cwd=package_parent,
                          timeout=120)


def _copy_package(tmp_path: Path) -> Path:
    """The package's Python files under tmp_path/kiln (sources only: fast to copy)."""
    dest = tmp_path / "kiln"
    ignore = shutil.ignore_patterns(".git", "tests", "docs", "examples", "__pycache__", "*.c",
                                    "*.h", "*.j2", "*.md")
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def test_layers_contract_holds(tmp_path):
    result = _lint(_copy_package(tmp_path).parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def test_a_pass_importing_codegen_breaks_the_contract(tmp_path):
    package = _copy_package(tmp_path)
    dce = package / "passes" / "dce.py"
    dce.write_text(dce.read_text() + "\nfrom ..codegen import kernel_ir  # noqa: E402,F401\n")
    result = _lint(package.parent)
    assert result.returncode != 0
    assert "kiln.passes is not allowed to import kiln.codegen" in result.stdout
    assert "kiln.passes.dce -> kiln.codegen.kernel_ir" in result.stdout
