"""Targets: what a target is and how to build for it, registered by name."""

from .target import TARGETS, Target, UnknownTargetError, get_target  # noqa: F401
from . import x86_64  # noqa: F401  (registers the target)
from . import arm64, riscv64  # noqa: F401  (register the cross targets)
