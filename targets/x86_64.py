"""x86-64 Linux: built with the system C compiler for a CPU's features (default: this host's).

`--cpu NAME` picks another CPU (with_cpu): its -march flags, its vector width and the features
codegen may then use (the AVX-512 / AVX2+FMA microkernels need "fma").
"""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path

from .target import Target, UnknownTargetError, register_target

_AVX2 = ("sse4_2", "avx", "avx2", "fma", "f16c")
_AVX512 = _AVX2 + ("avx512f", "avx512bw", "avx512dq", "avx512vl")

#: --cpu NAME -> (cflags, vector bits, features). gcc 12 knows no -march=znver4: x86-64-v4 it is.
CPUS: dict[str, tuple[tuple[str, ...], int, tuple[str, ...]]] = {
    "haswell": (("-march=haswell",), 256, _AVX2),
    "x86-64-v3": (("-march=x86-64-v3",), 256, _AVX2),
    "znver3": (("-march=znver3",), 256, _AVX2),
    "skylake-avx512": (("-march=skylake-avx512",), 512, _AVX512),
    "x86-64-v4": (("-march=x86-64-v4",), 512, _AVX512),
    "znver4": (("-march=x86-64-v4", "-mavx512vnni", "-mavx512bf16"), 512,
               _AVX512 + ("avx512_vnni", "avx512_bf16")),
    "x86-64": (("-march=x86-64",), 128, ()),
}


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
    capabilities=frozenset({"vector"}),
))
