"""What a target is: data, not code. The registry maps names and aliases to Targets."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field

from ..compiler.errors import KilnError


class UnknownTargetError(KilnError, ValueError):
    """The user asked for a target Kiln does not know (or cannot build yet)."""


@dataclass(frozen=True)
class Target:
    """A compilation target: triple, ELF machine, vector width and how to build for it.

    `toolchain` is "system" (the host's cc, flags in `cflags`) or "zig" (zig cc from the
    ziglang package with `-target zig_target -mcpu=cpu`). `llvm_*` describe the same target to
    the LLVM IR renderer. `capabilities` names the optional kernel IR features the target's
    renderers print (e.g. "vector"); lowering keeps to the scalar path without them."""

    name: str
    triple: str
    elf_machine: str           # as the loader reports it: "x86_64", "aarch64", "riscv64"
    vector_bits: int
    cflags: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    description: str = ""
    host_machines: tuple[str, ...] = field(default=())   # platform.machine() values it runs on
    features: tuple[str, ...] = ()   # ISA features codegen may rely on, e.g. ("avx2", "fma")
    toolchain: str = "system"
    zig_target: str = ""       # zig's -target, glibc version pinned (e.g. aarch64-linux-gnu.2.36)
    cpu: str = ""              # default CPU (zig -mcpu / LLVM cpu); --cpu overrides
    baseline_cpu: str = ""     # the CPU every core of the target has: the runtime is built for
                               # it, so session creation runs anywhere and checks the rest
    cpus: tuple[str, ...] = ()  # named cores users commonly pick (any LLVM CPU name works)
    llvm_triple: str = ""
    llvm_cpu: str = "generic"
    llvm_features: str = ""
    vector_isa: str = ""
    vector_length_agnostic: bool = False
    l1d_bytes: int = 32 * 1024
    l2_bytes: int = 1024 * 1024
    layout: str = "NCHW"
    capabilities: frozenset[str] = frozenset()
    qemu: str = ""             # qemu-user binary that runs it on another host
    qemu_sysroot: str = ""     # -L: where the target's dynamic loader and libc live
    qemu_cpu: str = ""         # -cpu: the emulated core (RVV: vlen is set here)

    @property
    def is_host(self) -> bool:
        return platform.machine() in self.host_machines


TARGETS: dict[str, Target] = {}
_ALIASES: dict[str, str] = {}

#: Targets on Kiln's map that are not built yet, with where they stand.
PLANNED = {
    "cuda": "the CUDA target is not implemented yet",
    "cuda-sm80": "the CUDA target is not implemented yet",
    "cuda-sm90": "the CUDA target is not implemented yet",
}


def register_target(target: Target) -> Target:
    TARGETS[target.name] = target
    for alias in (target.name,) + target.aliases:
        _ALIASES[alias] = target.name
    return target


def get_target(name: str) -> Target:
    """The Target called `name` (or an alias); `host` means this machine's architecture."""
    if name == "host":
        for target in TARGETS.values():
            if target.is_host:
                return target
        raise UnknownTargetError(f"Kiln cannot compile for this machine ({platform.machine()})"
                                 f"; known targets: {', '.join(sorted(TARGETS))}")
    if name in _ALIASES:
        return TARGETS[_ALIASES[name]]
    if name in PLANNED:
        raise UnknownTargetError(f"target '{name}': {PLANNED[name]}; available now: "
                                 f"{', '.join(sorted(TARGETS))}")
    raise UnknownTargetError(f"unknown target '{name}'; known targets: "
                             f"{', '.join(sorted(TARGETS))} (and 'host')")
