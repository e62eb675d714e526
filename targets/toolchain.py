"""Build an artifact from generated sources with a C compiler (the system `cc` by default)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from ..compiler.errors import ToolchainError
from .target import Target

RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtime"

#: Flags every artifact is built with: position-independent, exported API only, no errno
#: from math calls (lets loops vectorize), no fast-math (NaN and Inf behave as the reference).
BASE_CFLAGS = ("-O3", "-std=gnu11", "-fPIC", "-shared", "-fvisibility=hidden", "-pthread",
               "-fno-math-errno", "-fno-semantic-interposition")


def find_cc(cc: str | None = None) -> str:
    """The C compiler to use: `cc` if given, else the first of cc, gcc, clang on PATH."""
    candidates = [cc] if cc else ["cc", "gcc", "clang"]
    for candidate in candidates:
        path = shutil.which(candidate)
        if path:
            return path
    raise ToolchainError(f"no C compiler found (tried {', '.join(candidates)}); install gcc "
                         f"(apt-get install gcc) or pass --cc")


def build_shared(workdir: Path, sources: Sequence[str], output: Path, target: Target,
                 prefix: str, cc: str | None = None, extra_flags: Sequence[str] = ()) -> None:
    """Compile `sources` (relative to workdir) with the runtime into the shared library
    `output`. A compiler failure is a Kiln bug: the error carries the compiler's words."""
    compiler = find_cc(cc)
    runtime_c = RUNTIME_DIR / "kiln_runtime.c"
    command = [compiler, *BASE_CFLAGS, *target.cflags, *extra_flags,
               f"-DKILN_PREFIX={prefix}", f"-I{RUNTIME_DIR}", f"-I{workdir}",
               f"-Wa,-I{workdir}", *sources, str(runtime_c), "-o", str(output), "-lm"]
    env = dict(os.environ, LC_ALL="C")
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        log = (result.stderr or result.stdout).strip().splitlines()
        shown = "\n".join(log[:30])
        raise ToolchainError(f"the C compiler failed on generated code (a bug in Kiln; the "
                             f"sources are in {workdir}):\n{shown}")
