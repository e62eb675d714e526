"""A small ELF reader: enough to check an artifact before dlopen touches it.

It reads the file header (class, byte order, type, machine), checks that every segment and
section lies inside the file (a truncated copy fails here, not inside the dynamic loader),
lists the exported function symbols of .dynsym (to find the artifact's symbol prefix) and
where each named section lies (the manifest is one)."""

from __future__ import annotations

import os
import platform
import struct
import sys
from dataclasses import dataclass

from ..compiler.errors import ArtifactError

ET_DYN = 3
SHT_NOBITS = 8
SHT_DYNSYM = 11
STT_FUNC = 2
STB_GLOBAL, STB_WEAK = 1, 2

# e_machine codes -> names, as `uname -m` spells them where there is one.
MACHINES = {
    3: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390x", 40: "arm", 62: "x86_64",
    183: "aarch64", 243: "riscv", 258: "loongarch",
}
_HOST_MACHINES = {
    "x86_64": 62, "amd64": 62, "i386": 3, "i686": 3, "aarch64": 183, "arm64": 183,
    "armv7l": 40, "riscv64": 243, "ppc64le": 21, "ppc64": 21, "s390x": 22,
    "loongarch64": 258,
}


@dataclass(frozen=True)
class ElfInfo:
    machine: int                 # e_machine
    bits: int                    # 32 or 64
    little_endian: bool
    elf_type: int                # e_type: 3 for a shared object
    exported_functions: tuple[str, ...]
    sections: dict[str, tuple[int, int]]   # name -> (file offset, size), NOBITS left out

    @property
    def arch(self) -> str:
        return arch_name(self.machine, self.bits)


def arch_name(machine: int, bits: int) -> str:
    name = MACHINES.get(machine, f"unknown machine {machine}")
    if name == "riscv":
        return f"riscv{bits}"
    return name


def host_arch() -> tuple[int | None, int, bool]:
    """(e_machine, bits, little_endian) of the running Python, e_machine None if unknown."""
    bits = struct.calcsize("P") * 8
    return _HOST_MACHINES.get(platform.machine().lower()), bits, sys.byteorder == "little"


def host_arch_name() -> str:
    machine, bits, _ = host_arch()
    return arch_name(machine, bits) if machine is not None else platform.machine()


class _Reader:
    def __init__(self, path: str, f, size: int, bits: int, little: bool):
        self.path, self.f, self.size = path, f, size
        self.end = "<" if little else ">"
        self.word = "Q" if bits == 64 else "I"

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise _truncated(self.path, what, offset + length, self.size)
        self.f.seek(offset)
        return self.f.read(length)

    def unpack(self, fmt: str, data: bytes, offset: int = 0) -> tuple:
        fmt = self.end + fmt.replace("W", self.word)
        return struct.unpack_from(fmt, data, offset)


def _truncated(path: str, what: str, needed: int, size: int) -> ArtifactError:
    return ArtifactError(f"{path} is truncated or corrupt: its {what} ends at byte {needed} "
                         f"but the file has {size} bytes; compile the model again")


def read_elf(path: str) -> ElfInfo:
    """Parse and sanity-check the ELF file at `path`; ArtifactError if it is not one."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        f = open(path, "rb")
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with f:
        ident = f.read(16)
        if ident[:8] == b"!<arch>\n":
            raise ArtifactError(f"{path} is a static library (an ar archive): link it into a "
                                f"program (cc app.c {os.path.basename(path)} -pthread -lm); "
                                f"to load or run a model from Python, compile it to a .so")
        if ident[:4] != b"\x7fELF":
            raise ArtifactError(f"{path} is not a compiled model: it is not an ELF shared "
                                "library (no ELF magic number)")
        if len(ident) < 16 or ident[4] not in (1, 2) or ident[5] not in (1, 2):
            raise ArtifactError(f"{path} is truncated or corrupt: bad ELF identification")
        bits, little = (32, 64)[ident[4] - 1], ident[5] == 1
        r = _Reader(path, f, size, bits, little)
        hsize = 64 if bits == 64 else 52
        head = r.read(0, hsize, "ELF header")
        (e_type, machine, _version, _entry, phoff, shoff, _flags, _ehsize, phentsize, phnum,
         shentsize, shnum, shstrndx) = r.unpack("HHIWWWIHHHHHH", head, 16)
        _check_segments(r, bits, phoff, phentsize, phnum)
        sections = _sections(r, shoff, shentsize, shnum)
        symbols = _exported_functions(r, bits, sections)
        names = _section_names(r, sections, shstrndx)
    return ElfInfo(machine, bits, little, e_type, symbols, names)


def read_section(path: str, info: ElfInfo, name: str) -> bytes | None:
    """The bytes of section `name` of the ELF file at `path` (read_elf's `info`), or None
    if it has no such section."""
    where = info.sections.get(name)
    if where is None:
        return None
    with open(path, "rb") as f:
        f.seek(where[0])
        return f.read(where[1])


def _check_segments(r: _Reader, bits: int, phoff: int, phentsize: int, phnum: int) -> None:
    table = r.read(phoff, phentsize * phnum, "program header table")
    for i in range(phnum):
        if bits == 64:
            _t, _fl, offset, _va, _pa, filesz, _mem, _al = r.unpack("IIQQQQQQ", table,
                                                                    i * phentsize)
        else:
            _t, offset, _va, _pa, filesz, _mem, _fl, _al = r.unpack("IIIIIIII", table,
                                                                    i * phentsize)
        if offset + filesz > r.size:
            raise _truncated(r.path, f"segment {i}", offset + filesz, r.size)


def _sections(r: _Reader, shoff: int, shentsize: int, shnum: int
              ) -> list[tuple[int, int, int, int, int, int]]:
    """(name offset, type, file offset, size, link, entsize) of every section header."""
    table = r.read(shoff, shentsize * shnum, "section header table")
    sections = []
    for i in range(shnum):
        name, sh_type, _fl, _addr, offset, size, link, _info, _al, entsize = r.unpack(
            "IIWWWWIIWW", table, i * shentsize)
        if sh_type != SHT_NOBITS and offset + size > r.size:
            raise _truncated(r.path, f"section {i}", offset + size, r.size)
        sections.append((name, sh_type, offset, size, link, entsize))
    return sections


def _section_names(r: _Reader, sections: list, shstrndx: int) -> dict[str, tuple[int, int]]:
    if not 0 < shstrndx < len(sections):
        return {}
    strtab = r.read(sections[shstrndx][2], sections[shstrndx][3], "section name table")
    names = {}
    for name, sh_type, offset, size, _link, _entsize in sections:
        if sh_type != SHT_NOBITS:
            end = strtab.find(b"\0", name)
            names[strtab[name:end if end >= 0 else None].decode("ascii", "replace")] = \
                (offset, size)
    return names


def _exported_functions(r: _Reader, bits: int, sections: list) -> tuple[str, ...]:
    names = []
    for _name, sh_type, offset, size, link, entsize in sections:
        if sh_type != SHT_DYNSYM or entsize == 0 or link >= len(sections):
            continue
        symtab = r.read(offset, size, ".dynsym")
        strtab = r.read(sections[link][2], sections[link][3], ".dynstr")
        for k in range(size // entsize):
            if bits == 64:
                st_name, info, other, shndx, _v, _s = r.unpack("IBBHQQ", symtab, k * entsize)
            else:
                st_name, _v, _s, info, other, shndx = r.unpack("IIIBBH", symtab, k * entsize)
            exported = (info & 0xF) == STT_FUNC and (info >> 4) in (STB_GLOBAL, STB_WEAK)
            if exported and shndx != 0 and (other & 3) == 0:
                end = strtab.find(b"\0", st_name)
                names.append(strtab[st_name:end if end >= 0 else None].decode("ascii", "replace"))
    return tuple(names)
