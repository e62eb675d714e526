"""Element types Kiln knows, with their numpy, C and ABI spellings.

Besides the arithmetic types, Kiln knows ONNX's *storage* types: bfloat16, the float8 formats,
float4 and the 4-/2-bit integers. Kernels never compute in them: values are converted to their
`compute` type (float32, int8 or uint8) on the way in and back on the way out. The sub-byte
(`packed`) ones are stored as ONNX lays them out: element i in byte i*bits/8, lowest bits first
(a tensor of n int4 elements is ceil(n/2) bytes); numpy holds them one element per item
(ml_dtypes' int4, float4_e2m1fn, ...), as onnx.numpy_helper does.
"""

from __future__ import annotations

import enum

import ml_dtypes
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
    bfloat16 = 16
    float8e4m3fn = 17
    float8e4m3fnuz = 18
    float8e5m2 = 19
    float8e5m2fnuz = 20
    uint4 = 21
    int4 = 22
    float4e2m1 = 23
    float8e8m0 = 24
    uint2 = 25
    int2 = 26

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(_NUMPY[self])

    @property
    def itemsize(self) -> int:
        """Bytes per element in numpy (a packed type's elements share bytes: see `nbytes`)."""
        return self.numpy.itemsize

    @property
    def bits(self) -> int:
        """Bits per element in memory."""
        return _PACKED_BITS.get(self, 8 * self.itemsize)

    def nbytes(self, numel: int) -> int:
        """Bytes that `numel` elements take in memory (packed types share bytes)."""
        return -(-int(numel) * self.bits // 8)

    @property
    def c_type(self) -> str:
        return _C_TYPE[self]

    @property
    def is_float(self) -> bool:
        """An arithmetic float type (float16/32/64), not a float storage type."""
        return self in (DType.float16, DType.float32, DType.float64)

    @property
    def is_int(self) -> bool:
        return not self.is_float and self is not DType.bool and not self.is_storage

    @property
    def is_storage(self) -> bool:
        """A storage-only type: kernels convert it to `compute` before any arithmetic."""
        return self in _COMPUTE

    @property
    def is_packed(self) -> bool:
        """A sub-byte type: several elements share each byte in memory."""
        return self in _PACKED_BITS

    @property
    def compute(self) -> "DType":
        """The type arithmetic on this type's values happens in (itself for most types)."""
        return _COMPUTE.get(self, self)

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
    DType.bfloat16: ml_dtypes.bfloat16, DType.float8e4m3fn: ml_dtypes.float8_e4m3fn,
    DType.float8e4m3fnuz: ml_dtypes.float8_e4m3fnuz, DType.float8e5m2: ml_dtypes.float8_e5m2,
    DType.float8e5m2fnuz: ml_dtypes.float8_e5m2fnuz, DType.uint4: ml_dtypes.uint4,
    DType.int4: ml_dtypes.int4, DType.float4e2m1: ml_dtypes.float4_e2m1fn,
    DType.float8e8m0: ml_dtypes.float8_e8m0fnu, DType.uint2: ml_dtypes.uint2,
    DType.int2: ml_dtypes.int2,
}
_NUMPY = {k: np.dtype(v).name for k, v in _NUMPY.items()}

_C_TYPE = {
    DType.float32: "float", DType.uint8: "uint8_t", DType.int8: "int8_t",
    DType.uint16: "uint16_t", DType.int16: "int16_t", DType.int32: "int32_t",
    DType.int64: "int64_t", DType.bool: "uint8_t", DType.float16: "_Float16",
    DType.float64: "double", DType.uint32: "uint32_t", DType.uint64: "uint64_t",
    DType.bfloat16: "uint16_t",
}

#: storage type -> compute type
_COMPUTE = {
    DType.bfloat16: DType.float32, DType.float8e4m3fn: DType.float32,
    DType.float8e4m3fnuz: DType.float32, DType.float8e5m2: DType.float32,
    DType.float8e5m2fnuz: DType.float32, DType.float8e8m0: DType.float32,
    DType.float4e2m1: DType.float32, DType.int4: DType.int8, DType.uint4: DType.uint8,
    DType.int2: DType.int8, DType.uint2: DType.uint8,
}
_PACKED_BITS = {DType.uint4: 4, DType.int4: 4, DType.float4e2m1: 4, DType.uint2: 2,
                DType.int2: 2}
for _storage in _COMPUTE:
    _C_TYPE.setdefault(_storage, "uint8_t")   # one byte (of packed elements) at a time


def pack_array(array: np.ndarray, dtype: DType) -> np.ndarray:
    """`array`'s elements as they lie in memory: packed types several to a byte (low bits
    first), other types as they are; a flat uint8 array for packed types."""
    array = np.ascontiguousarray(array, dtype.numpy)
    if not dtype.is_packed:
        return array
    per_byte = 8 // dtype.bits
    codes = array.reshape(-1).view(np.uint8) & ((1 << dtype.bits) - 1)
    codes = np.concatenate([codes, np.zeros(-codes.size % per_byte, np.uint8)])
    codes = codes.reshape(-1, per_byte).astype(np.uint8)
    packed = np.zeros(codes.shape[0], np.uint8)
    for k in range(per_byte):
        packed |= codes[:, k] << np.uint8(k * dtype.bits)
    return packed


def unpack_array(data: np.ndarray, dtype: DType, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of pack_array: memory bytes `data` as a numpy array of `dtype` and `shape`."""
    if not dtype.is_packed:
        return np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype.numpy).reshape(shape)
    numel = int(np.prod(shape, dtype=np.int64))
    per_byte = 8 // dtype.bits
    raw = np.asarray(data, np.uint8).reshape(-1)
    codes = np.stack([(raw >> np.uint8(k * dtype.bits)) & np.uint8((1 << dtype.bits) - 1)
                      for k in range(per_byte)], axis=1).reshape(-1)[:numel]
    return codes.astype(np.uint8).view(dtype.numpy).reshape(shape)
