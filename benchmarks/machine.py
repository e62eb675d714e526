"""What machine a benchmark ran on: CPU model, core count and vector flags."""

from __future__ import annotations

import os
from pathlib import Path

VECTOR_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "neon", "asimd")


def cpu_summary() -> str:
    """'MODEL, N cores, flags: ...' from /proc/cpuinfo (Linux), or what os tells."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    shown = [f for f in VECTOR_FLAGS if f in flags]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores, flags: {' '.join(shown) or 'none of ' + '/'.join(VECTOR_FLAGS)}"
