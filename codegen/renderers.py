"""The renderers, by name: what `kiln compile --emit` picks, behind one interface.

A renderer turns each kernel into the text model.c holds for it (a definition, or a
declaration of a kernel it builds elsewhere), renders the shared helper functions, and
names the object files it adds to the link. The C renderer (c_renderer.py) prints
everything as C; the LLVM renderer renders the group kernels as LLVM IR (llvm_renderer.py,
llvm_module.py) into kernels.o and leaves model.c their declarations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

from ..compiler.errors import KilnError
from . import kernel_ir as K
from .c_renderer import CRenderer


class UnknownRendererError(KilnError, ValueError):
    """--emit names no renderer."""


class KernelRenderer(Protocol):
    name: str

    def function(self, fn: K.Function) -> str:
        """model.c's text of a shared helper function."""

    def kernel(self, k: K.Kernel) -> str:
        """model.c's text of a group kernel."""

    def objects(self, target, workdir: Path, cpu: str | None) -> list[str]:
        """Object files (relative to workdir) written for the link."""


class LLVMRenderer:
    """Group kernels as LLVM IR, optimized and emitted in process (llvmlite); shared
    helpers and the kernels run at session creation stay C."""

    name = "llvm"

    def __init__(self) -> None:
        self.kernels: list[K.Kernel] = []
        self._c = CRenderer()

    def function(self, fn: K.Function) -> str:
        return self._c.function(fn)

    def kernel(self, k: K.Kernel) -> str:
        self.kernels.append(k)
        return f"KILN_HIDDEN void {k.name}(const kiln_exec *e, int64_t lo, int64_t hi);"

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
