"""Fixtures for the cross-target tests: artifacts for arm64 and riscv64-rvv, built with zig cc
(or LLVM) and run under QEMU user mode; helpers in cross_helpers.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
