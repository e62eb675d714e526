"""Build an artifact from generated sources with a C compiler (the system `cc` by default)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from ..compiler.errors import ToolchainError
from ..runtime.build import RUNTIME_SOURCES, runtime_cflags, runtime_ldflags
from .target import Target

#: Optimization flags of every artifact: no errno from math calls (lets loops vectorize),
#: no fast-math (NaN and Inf behave as the reference does).
BASE_CFLAGS = ("-O3", "-std=gnu11", "-fno-math-errno", "-fno-semantic-interposition")


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
    command = [compiler, *BASE_CFLAGS, *target.cflags, *extra_flags, *runtime_cflags(prefix),
               f"-Wa,-I{workdir}", *sources, *map(str, RUNTIME_SOURCES), "-o", str(output),
               *runtime_ldflags()]
    env = dict(os.environ, LC_ALL="C")
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        log = (result.stderr or result.stdout).strip().splitlines()
        shown = "\n".join(log[:30])
        raise ToolchainError(f"the C compiler failed on generated code (a bug in Kiln; the "
                             f"sources are in {workdir}):\n{shown}")
