"""The renderers, by name: what `kiln compile --emit` picks, behind one interface.

A renderer turns each kernel into the text model.c holds for it (a definition, or a
declaration of a kernel it builds elsewhere), renders the shared helper functions, names
the object files it adds to the link, and says which optional kernel-IR features it prints
(`capabilities`: "vector" for vector nodes, microkernels and vector math; the driver gives
lowering vectors only when the renderer has it). The C renderer (c_renderer.py) prints
everything as C; the LLVM renderer renders the group kernels and the functions they call as
LLVM IR (llvm_renderer.py, llvm_module.py) into kernels.o and leaves model.c the kernels'
declarations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

from ..compiler.errors import KilnError
from . import kernel_ir as K
from .c_renderer import CRenderer
from .llvm_renderer import CAPABILITIES as LLVM_CAPABILITIES, PREPARED_AT


class UnknownRendererError(KilnError, ValueError):
    """--emit names no renderer."""


class KernelRenderer(Protocol):
    name: str
    capabilities: frozenset[str]

    def function(self, fn: K.Function) -> str:
        """model.c's text of a shared helper function."""

    def kernel(self, k: K.Kernel) -> str:
        """model.c's text of a group kernel."""

    def objects(self, target, workdir: Path, cpu: str | None) -> list[str]:
        """Object files (relative to workdir) written for the link."""


class LLVMRenderer:
    """Group kernels, and the functions they call, as LLVM IR optimized and emitted in
    process (llvmlite); the kernels run at session creation stay C."""

    name = "llvm"
    capabilities = LLVM_CAPABILITIES

    def __init__(self) -> None:
        self.kernels: list[K.Kernel] = []
        self._prepared_at = False   # whether model.c defines PREPARED_AT yet

    def function(self, fn: K.Function) -> str:
        """Nothing in model.c: the LLVM module defines `fn` where a kernel calls it."""
        return f"/* {fn.name}: LLVM IR, in kernels.o */"

    def kernel(self, k: K.Kernel) -> str:
        """The kernel's declaration; before the first kernel reading prepared data, the
        constant that says where that data starts in the arena."""
        self.kernels.append(k)
        declaration = f"KILN_HIDDEN void {k.name}(const kiln_exec *e, int64_t lo, int64_t hi);"
        if self._prepared_at or all(b.storage is not K.Storage.PREPARED for b in k.buffers):
            return declaration
        self._prepared_at = True
        return f"KILN_HIDDEN const int64_t {PREPARED_AT} = KILN_PREPARED;\n{declaration}"

    def objects(self, target, workdir: Path, cpu: str | None) -> list[str]:
        from .llvm_module import write_object   # loads LLVM: only when asked
        return [write_object(self.kernels, target, workdir, cpu)]


RENDERERS: dict[str, Callable[[], KernelRenderer]] = {"c": CRenderer, "llvm": LLVMRenderer}


def renderer_for(name: str) -> KernelRenderer:
    """A fresh renderer named `name` (one per compilation: it may collect kernels)."""
    try:
        return RENDERERS[name]()
    except KeyError:
        raise UnknownRendererError(
            f"emit={name!r}: choose one of {', '.join(repr(n) for n in RENDERERS)} "
            f"('c': the C renderer, 'llvm': LLVM IR)") from None
