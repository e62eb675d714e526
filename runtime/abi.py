"""The artifact's ABI as Python sees it: version, statuses, and the model description that
codegen fills in to render the public header. The C side lives in kiln_abi.h."""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass

from ..compiler.dtypes import DType
from ..compiler.errors import KilnError

ABI_VERSION = 1
DEFAULT_PREFIX = "kiln_"
WORKSPACE_ALIGNMENT = 64

_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Status(enum.IntEnum):
    """kiln_status, as returned by every C call."""

    OK = 0
    INVALID_ARGUMENT = 1
    ABI_MISMATCH = 2
    OUT_OF_MEMORY = 3
    WORKSPACE_TOO_SMALL = 4
    THREAD_ERROR = 5
    INTERNAL = 6
    UNSUPPORTED_CPU = 7


def check_prefix(prefix: str) -> str:
    """Return `prefix` if it can start a C identifier, else raise a KilnError saying why."""
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        raise KilnError(f"symbol prefix {prefix!r} is not a valid C identifier prefix: use "
                        "letters, digits and underscores, not starting with a digit "
                        "(for example 'mynet_')")
    return prefix


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a compiled model."""

    name: str
    dtype: str          # numpy / Kiln name, e.g. "float32"
    dtype_code: int     # ONNX TensorProto.DataType code, e.g. 1
    shape: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if DType(self.dtype_code).name != self.dtype:
            raise ValueError(f"tensor {self.name!r}: dtype {self.dtype!r} does not match "
                             f"ONNX code {self.dtype_code} ({DType(self.dtype_code).name})")
        if any(d < 0 for d in self.shape):
            raise ValueError(f"tensor {self.name!r}: shape {self.shape} is not static")

    @classmethod
    def of(cls, name: str, dtype: DType, shape) -> "TensorSpec":
        return cls(name, dtype.name, dtype.value, tuple(shape))

    @property
    def nbytes(self) -> int:
        return DType(self.dtype_code).nbytes(math.prod(self.shape))


@dataclass(frozen=True)
class ModelSpec:
    """What the public header says about a compiled model."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    workspace_size: int | None = None   # arena bytes, when known: adds a #define
    threads_max: int | None = None      # the thread budget the schedules were chosen for

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
