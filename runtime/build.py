"""What a toolchain needs to build the runtime into an artifact.

An artifact is the generated model C plus RUNTIME_SOURCES, compiled and linked with

    cc <cflags of the target> $(runtime_cflags(prefix)) model.c kiln_runtime.c kiln_pool.c \\
       $(runtime_ldflags()) -o model.so

The runtime is C11 (gcc and clang, -std=c11 or gnu11, -Wall -Wextra clean); it needs
-fvisibility=hidden so that only the prefixed public API is exported, and -pthread."""

from __future__ import annotations

from pathlib import Path

from .abi import DEFAULT_PREFIX, check_prefix

RUNTIME_DIR = Path(__file__).resolve().parent
INCLUDE_DIR = RUNTIME_DIR            # kiln_model.h, kiln_abi.h
RUNTIME_SOURCES = (RUNTIME_DIR / "kiln_runtime.c", RUNTIME_DIR / "kiln_pool.c")


def runtime_cflags(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Compile flags for kiln_runtime.c and the generated model code."""
    return ["-fPIC", "-fvisibility=hidden", "-pthread", f"-DKILN_PREFIX={check_prefix(prefix)}",
            f"-I{INCLUDE_DIR}"]


#: What a program linking a static artifact (OUT.a) adds after it: the C library's threads
#: and libm, nothing else (`cc main.c model.a -pthread -lm`).
STATIC_LINK_FLAGS = ("-pthread", "-lm")


def runtime_ldflags(soname: str | None = None) -> list[str]:
    """Link flags for the shared library (libc, libm, libpthread only; an unresolved symbol is
    a link error, not a dlopen failure later). `soname`: its DT_SONAME, the file's name, so
    that a program linked against it by path (CMake does) records the name, not the path."""
    flags = ["-shared", "-pthread", "-lm", "-Wl,--no-undefined"]
    if soname and "," not in soname:   # -Wl splits at commas
        flags.append(f"-Wl,-soname,{soname}")
    return flags
