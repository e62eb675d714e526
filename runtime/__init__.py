"""The C runtime compiled into every artifact, its public header, and the Python loader.

- kiln_runtime.c / kiln_abi.h / kiln_model.h: the C side (see kiln_abi.h for the public ABI).
- header.render_header(ModelSpec, prefix): the public header OUT.h of one compiled model.
- load(path, threads=None, emulator=None) -> Session: run a compiled model from Python.
"""

from .abi import ABI_VERSION, DEFAULT_PREFIX, ModelSpec, Status, TensorSpec, check_prefix
from .build import RUNTIME_SOURCES, runtime_cflags, runtime_ldflags
from .header import render_header
from .loader import Session, TensorInfo, load

__all__ = [
    "ABI_VERSION", "DEFAULT_PREFIX", "ModelSpec", "Session", "Status", "TensorInfo",
    "TensorSpec", "check_prefix", "load", "render_header", "RUNTIME_SOURCES",
    "runtime_cflags", "runtime_ldflags",
]
