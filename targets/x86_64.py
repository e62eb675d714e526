"""x86-64 Linux: built with the system C compiler for a CPU's features (default: this host's).

`--cpu NAME` picks another CPU (with_cpu): its -march flags, its vector width and the features
codegen may then use (the AVX-512 / AVX2+FMA microkernels need "fma").
"""

from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass
from pathlib import Path

from .target import Target, UnknownTargetError, register_target

_AVX2 = ("sse4_2", "avx", "avx2", "fma", "f16c")
_AVX512 = _AVX2 + ("avx512f", "avx512bw", "avx512dq", "avx512vl")

#: --cpu NAME -> (cflags, vector bits, features). gcc 12 knows no -march=znver4: x86-64-v4 it is.
CPUS: dict[str, tuple[tuple[str, ...], int, tuple[str, ...]]] = {
    "x86-64-v2": (("-march=x86-64-v2",), 128, ("sse4_2",)),
    "haswell": (("-march=haswell",), 256, _AVX2),
    "x86-64-v3": (("-march=x86-64-v3",), 256, _AVX2),
    "znver3": (("-march=znver3",), 256, _AVX2),
    "skylake-avx512": (("-march=skylake-avx512",), 512, _AVX512),
    "x86-64-v4": (("-march=x86-64-v4",), 512, _AVX512),
    "znver4": (("-march=x86-64-v4", "-mavx512vnni", "-mavx512bf16"), 512,
               _AVX512 + ("avx512_vnni", "avx512_bf16")),
    "x86-64": (("-march=x86-64",), 128, ()),
}


@dataclass(frozen=True)
class CpuidFeature:
    """An instruction set as CPUID reports it: bit `bit` of register `reg` (0-3: eax, ebx,
    ecx, edx) of leaf `leaf`, subleaf `subleaf`; `state` the register state the OS must
    save for it ("ymm": AVX, "zmm": AVX-512, "": none)."""

    name: str
    macro: str          # the compiler's predefined macro when its code may use it
    leaf: int
    subleaf: int
    reg: int
    bit: int
    state: str = ""


#: The instruction sets an artifact's code may use that session creation checks.
CPUID_FEATURES = tuple(CpuidFeature(*row) for row in (
    ("sse3", "__SSE3__", 1, 0, 2, 0), ("pclmul", "__PCLMUL__", 1, 0, 2, 1),
    ("ssse3", "__SSSE3__", 1, 0, 2, 9), ("fma", "__FMA__", 1, 0, 2, 12, "ymm"),
    ("sse4.1", "__SSE4_1__", 1, 0, 2, 19), ("sse4.2", "__SSE4_2__", 1, 0, 2, 20),
    ("popcnt", "__POPCNT__", 1, 0, 2, 23), ("aes", "__AES__", 1, 0, 2, 25),
    ("avx", "__AVX__", 1, 0, 2, 28, "ymm"), ("f16c", "__F16C__", 1, 0, 2, 29, "ymm"),
    ("bmi", "__BMI__", 7, 0, 1, 3), ("avx2", "__AVX2__", 7, 0, 1, 5, "ymm"),
    ("bmi2", "__BMI2__", 7, 0, 1, 8), ("avx512f", "__AVX512F__", 7, 0, 1, 16, "zmm"),
    ("avx512dq", "__AVX512DQ__", 7, 0, 1, 17, "zmm"),
    ("avx512ifma", "__AVX512IFMA__", 7, 0, 1, 21, "zmm"),
    ("avx512cd", "__AVX512CD__", 7, 0, 1, 28, "zmm"),
    ("avx512bw", "__AVX512BW__", 7, 0, 1, 30, "zmm"),
    ("avx512vl", "__AVX512VL__", 7, 0, 1, 31, "zmm"),
    ("avx512vbmi", "__AVX512VBMI__", 7, 0, 2, 1, "zmm"),
    ("avx512vbmi2", "__AVX512VBMI2__", 7, 0, 2, 6, "zmm"), ("gfni", "__GFNI__", 7, 0, 2, 8),
    ("vpclmulqdq", "__VPCLMULQDQ__", 7, 0, 2, 10),
    ("avx512vnni", "__AVX512VNNI__", 7, 0, 2, 11, "zmm"),
    ("avx512bitalg", "__AVX512BITALG__", 7, 0, 2, 12, "zmm"),
    ("avx512vpopcntdq", "__AVX512VPOPCNTDQ__", 7, 0, 2, 14, "zmm"),
    ("avx512bf16", "__AVX512BF16__", 7, 1, 0, 5, "zmm"),
))


def host_features() -> tuple[str, ...]:
    """The CPU flags of this machine (from /proc/cpuinfo), empty if unknown or not x86."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return ()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return tuple(sorted(set(line.partition(":")[2].split())))
    except OSError:
        pass
    return ()


def native_spec() -> tuple[tuple[str, ...], int, tuple[str, ...]]:
    """cflags, vector bits and features for `--cpu native` (this host, if it is x86-64)."""
    flags = host_features()
    if not flags:                       # cross-compiling from elsewhere: a safe AVX2 baseline
        return CPUS["x86-64-v3"]
    bits = 512 if "avx512f" in flags else 256 if "avx2" in flags else 128
    return ("-march=native",), bits, flags


def with_cpu(target: Target, cpu: str) -> Target:
    """`target` specialised for CPU `cpu` (a name of CPUS, or 'native'): its cflags, vector
    width and features."""
    if cpu == "native":
        cflags, bits, features = native_spec()
    elif cpu in CPUS:
        cflags, bits, features = CPUS[cpu]
    else:
        raise UnknownTargetError(f"unknown --cpu '{cpu}' for x86_64; known: native, "
                                 f"{', '.join(sorted(CPUS))}")
    return dataclasses.replace(target, cflags=cflags, vector_bits=bits, features=features)


def cpu_vector_bits(cpu: str | None) -> int:
    """The vector width of CPU `cpu` (None or 'native': this host); 0 if Kiln does not know
    it (codegen then keeps to the scalar loops)."""
    if cpu is None or cpu == "native":
        return native_spec()[1] if "fma" in native_spec()[2] else 0
    cflags, bits, features = CPUS.get(cpu, ((), 0, ()))
    return bits if "fma" in features else 0


_CFLAGS, _BITS, _FEATURES = native_spec()

X86_64 = register_target(Target(
    name="x86_64",
    triple="x86_64-linux-gnu",
    elf_machine="x86_64",
    vector_bits=_BITS,
    cflags=_CFLAGS,
    aliases=("x86-64", "amd64"),
    description="x86-64 Linux, AVX2/AVX-512 as the compiling host has them",
    host_machines=("x86_64", "AMD64"),
    features=_FEATURES,
    cpus=tuple(CPUS),
    baseline_cpu="x86-64",
    qemu="qemu-x86_64",        # on x86-64 itself: to run an artifact on another CPU model
    qemu_sysroot="/",
    capabilities=frozenset({"vector"}),
))
