"""Element types Kiln knows, with their numpy, C and ABI spellings."""

from __future__ import annotations

import enum

import numpy as np


class DType(enum.Enum):
    """An element type. The value is the ABI code written into artifacts (ONNX's codes)."""

    float32 = 1
    uint8 = 2
    int8 = 3
    uint16 = 4
    int16 = 5
    int32 = 6
    int64 = 7
    bool = 9
    float16 = 10
    float64 = 11
    uint32 = 12
    uint64 = 13

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(_NUMPY[self])

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @property
    def c_type(self) -> str:
        return _C_TYPE[self]

    @property
    def is_float(self) -> bool:
        return self in (DType.float16, DType.float32, DType.float64)

    @property
    def is_int(self) -> bool:
        return not self.is_float and self is not DType.bool

    @classmethod
    def from_numpy(cls, dtype: np.dtype | type) -> "DType":
        name = np.dtype(dtype).name
        for member in cls:
            if _NUMPY[member] == name:
                return member
        raise KeyError(f"no Kiln dtype for numpy dtype {name}")

    @classmethod
    def from_onnx(cls, code: int) -> "DType":
        return cls(code)


_NUMPY = {
    DType.float32: "float32", DType.uint8: "uint8", DType.int8: "int8", DType.uint16: "uint16",
    DType.int16: "int16", DType.int32: "int32", DType.int64: "int64", DType.bool: "bool",
    DType.float16: "float16", DType.float64: "float64", DType.uint32: "uint32",
    DType.uint64: "uint64",
}

_C_TYPE = {
    DType.float32: "float", DType.uint8: "uint8_t", DType.int8: "int8_t",
    DType.uint16: "uint16_t", DType.int16: "int16_t", DType.int32: "int32_t",
    DType.int64: "int64_t", DType.bool: "uint8_t", DType.float16: "_Float16",
    DType.float64: "double", DType.uint32: "uint32_t", DType.uint64: "uint64_t",
}
