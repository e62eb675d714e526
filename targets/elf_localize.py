"""Make a relocatable object's hidden symbols local, so that a static library's internals
cannot clash with another library's.

DESIGN: a static library (`kiln compile -o OUT.a`) is one relocatable object, `ld -r` of the
model's and the runtime's objects. Inside it the runtime and the generated code call each
other through hidden-visibility globals (the model descriptor, kiln_weights, kiln_parallel_for,
the pool, the CPU check, the manifest, the LLVM renderer's kernels). Hidden only keeps a symbol
out of a shared library's dynamic table: in a static link it is an ordinary global, and two
models linked into one program would define kiln_weights twice. Turning every defined hidden
global into a local symbol, once the object is merged, is what `objcopy --localize-hidden`
does; it is done here in Python because objcopy reads only its own architecture's objects
(Debian's x86-64 binutils refuses an aarch64 one) and zig ships no such option, while the
rewrite is the same for every target: the symbol table is reordered in place (ELF wants the
locals first) and every symbol index that points into it (relocations, section-group
signatures, the extended section-index table) is renumbered. Nothing else in the file moves.
A renaming scheme (-Dkiln_weights=resnet_kiln_weights, ...) would have to know every producer
of symbols (C, assembly, LLVM IR) and every name; this needs no list: whatever is hidden, now
or later, becomes local, and the only globals left are the exported, prefixed C API (which
`defined_globals` lets the build check).
"""

from __future__ import annotations

import struct
from pathlib import Path

from ..compiler.errors import ToolchainError

ET_REL = 1
SHT_SYMTAB, SHT_RELA, SHT_REL, SHT_GROUP, SHT_SYMTAB_SHNDX = 2, 4, 9, 17, 18
SHN_UNDEF, SHN_COMMON = 0, 0xFFF2
STB_LOCAL = 0
STV_DEFAULT = 0

_EHDR = "<16sHHIQQQIHHHHHH"
_SHDR = "<IIQQQQIIQQ"
_SYM = "<IBBHQQ"


class _Object:
    """An ELF64 little-endian relocatable object, read whole into memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = bytearray(path.read_bytes())
        ident = bytes(self.data[:16])
        if ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] != 1:
            raise ToolchainError(f"{path}: static libraries are built for 64-bit "
                                 f"little-endian ELF targets only")
        header = struct.unpack_from(_EHDR, self.data, 0)
        if header[1] != ET_REL:
            raise ToolchainError(f"{path} is not a relocatable object (a bug in Kiln)")
        shoff, shentsize, shnum = header[6], header[11], header[12]
        if shnum == 0:   # more than 0xff00 sections: the count is in section 0
            shnum = struct.unpack_from(_SHDR, self.data, shoff)[5]
        self.sections = [list(struct.unpack_from(_SHDR, self.data, shoff + i * shentsize))
                         for i in range(shnum)]
        self.shoff, self.shentsize = shoff, shentsize
        symtabs = [i for i, s in enumerate(self.sections) if s[1] == SHT_SYMTAB]
        if len(symtabs) != 1:
            raise ToolchainError(f"{path} has {len(symtabs)} symbol tables, not one")
        self.symtab = symtabs[0]

    def symbols(self) -> list[list[int]]:
        s = self.sections[self.symtab]
        count = s[5] // s[9]
        return [list(struct.unpack_from(_SYM, self.data, s[4] + k * s[9])) for k in range(count)]

    def name(self, st_name: int) -> str:
        strtab = self.sections[self.sections[self.symtab][6]]
        start = strtab[4] + st_name
        return bytes(self.data[start:self.data.index(0, start)]).decode("utf-8", "replace")

    def write_section_header(self, index: int) -> None:
        struct.pack_into(_SHDR, self.data, self.shoff + index * self.shentsize,
                         *self.sections[index])


def localize_hidden(path: Path) -> list[str]:
    """Rewrite the object at `path` so that its defined non-default-visibility globals are
    local; returns their names. Refuses (a Kiln bug) what it cannot rewrite safely: a hidden
    common symbol, or a section that refers to symbols in a way it does not know."""
    obj = _Object(path)
    symtab = obj.sections[obj.symtab]
    symbols = obj.symbols()
    first_global = symtab[7]
    to_localize, kept = [], []
    for index in range(first_global, len(symbols)):
        sym = symbols[index]
        hidden = (sym[2] & 3) != STV_DEFAULT
        if hidden and sym[3] == SHN_COMMON:
            raise ToolchainError(f"{path}: hidden common symbol {obj.name(sym[0])} cannot be "
                                 f"made local (build with -fno-common; a bug in Kiln)")
        (to_localize if hidden and sym[3] != SHN_UNDEF else kept).append(index)
    order = list(range(first_global)) + to_localize + kept
    new_index = {old: new for new, old in enumerate(order)}

    for i, section in enumerate(obj.sections):   # every table that names symbols by index
        sh_type, offset, size, link, entsize = section[1], section[4], section[5], \
            section[6], section[9]
        if link != obj.symtab or i == obj.symtab:
            continue
        if sh_type in (SHT_RELA, SHT_REL):
            for at in range(offset, offset + size, entsize):
                (info,) = struct.unpack_from("<Q", obj.data, at + 8)
                struct.pack_into("<Q", obj.data, at + 8,
                                 (new_index[info >> 32] << 32) | (info & 0xFFFFFFFF))
        elif sh_type == SHT_GROUP:
            section[7] = new_index[section[7]]
            obj.write_section_header(i)
        elif sh_type == SHT_SYMTAB_SHNDX:
            values = struct.unpack_from(f"<{len(symbols)}I", obj.data, offset)
            struct.pack_into(f"<{len(symbols)}I", obj.data, offset,
                             *(values[old] for old in order))
        else:
            raise ToolchainError(f"{path}: section {i} (type {sh_type:#x}) refers to symbols "
                                 f"by index; Kiln cannot make hidden symbols local in it "
                                 f"(a bug in Kiln: build without it, e.g. -fno-addrsig)")

    for new, old in enumerate(order):
        sym = symbols[old]
        if old in to_localize:
            sym[1] = (STB_LOCAL << 4) | (sym[1] & 0xF)
        struct.pack_into(_SYM, obj.data, symtab[4] + new * symtab[9], *sym)
    symtab[7] = first_global + len(to_localize)   # sh_info: the first non-local symbol
    obj.write_section_header(obj.symtab)
    path.write_bytes(obj.data)
    return [obj.name(symbols[i][0]) for i in to_localize]


def defined_globals(path: Path) -> tuple[list[str], list[str]]:
    """(defined, undefined) global and weak symbol names of the object at `path`."""
    obj = _Object(path)
    symbols = obj.symbols()
    defined, undefined = [], []
    for sym in symbols[obj.sections[obj.symtab][7]:]:
        (undefined if sym[3] == SHN_UNDEF else defined).append(obj.name(sym[0]))
    return defined, undefined
