"""Render a compiled model's public C header (OUT.h).

The types and prototypes come from kiln_abi.h, the one source the runtime itself compiles
against: the types block is copied verbatim (it has its own include guard, shared by every
model of this ABI version, so two models' headers can be included together), and each
`KILN_API(name)` in the prototypes block becomes `<prefix>name`."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import jinja2

from ..compiler.dtypes import DType
from .abi import ABI_VERSION, ModelSpec, TensorSpec, check_prefix

RUNTIME_DIR = Path(__file__).resolve().parent
ABI_HEADER = RUNTIME_DIR / "kiln_abi.h"

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(RUNTIME_DIR / "templates")),
    trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined, autoescape=False,
)


def _block(text: str, name: str) -> str:
    match = re.search(rf"/\* @{name}-begin \*/\n(.*?)/\* @{name}-end \*/", text, re.S)
    if match is None:
        raise RuntimeError(f"{ABI_HEADER} has no @{name} block")
    return match.group(1).rstrip("\n")


@lru_cache(maxsize=None)
def _abi_blocks() -> tuple[str, str]:
    text = ABI_HEADER.read_text()
    return _block(text, "types"), _block(text, "prototypes")


def _comment_safe(text: str) -> str:
    """`text` for a /* */ comment line: no comment end, control character or undecodable byte
    (those become '?'; the exact name is in the library's tensor descriptors)."""
    safe = "".join("?" if ord(ch) < 32 or ord(ch) == 127 or 0xD800 <= ord(ch) < 0xE000
                   else ch for ch in text)
    return safe.replace("*/", "* /").replace("/*", "/ *")


def _tensor_line(index: int, t: TensorSpec, name_width: int) -> str:
    dims = "[" + ", ".join(str(d) for d in t.shape) + "]"
    c_type = DType(t.dtype_code).c_type
    name = _comment_safe(f'"{t.name}"').ljust(name_width + 2)
    return f"{index}  {name}  {t.dtype} ({c_type})  {dims}  {t.nbytes} bytes"


def render_header(model: ModelSpec, prefix: str = "kiln_", header_name: str = "model.h",
                  link_symbol: str | None = None) -> str:
    """The public header for `model` compiled with symbol prefix `prefix`. `link_symbol`: a
    symbol only this build defines (manifest_source's), which the header makes every
    including file refer to, so that two libraries of one prefix cannot link silently."""
    check_prefix(prefix)
    types_block, prototypes = _abi_blocks()
    prototypes = prototypes.replace("KILN_EXPORT ", "")
    prototypes = re.sub(r"KILN_API\((\w+)\)", lambda m: prefix + m.group(1), prototypes)
    width = max((len(t.name) for t in (*model.inputs, *model.outputs)), default=0)
    macro_prefix = prefix.upper()
    return _ENV.get_template("header.h.j2").render(
        header_name=_comment_safe(header_name),
        model_name=_comment_safe(model.name),
        abi_version=ABI_VERSION,
        prefix=prefix,
        macro_prefix=macro_prefix,
        guard=f"KILN_PUBLIC_H_{macro_prefix}",
        inputs=[{"line": _tensor_line(i, t, width)} for i, t in enumerate(model.inputs)],
        outputs=[{"line": _tensor_line(i, t, width)} for i, t in enumerate(model.outputs)],
        workspace_size=model.workspace_size,
        threads_max=model.threads_max,
        types_block=types_block,
        prototypes_block=prototypes,
        link_symbol=link_symbol,
    )
