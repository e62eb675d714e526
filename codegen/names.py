"""Names from the model reach C only as sanitized identifiers or escaped string literals."""

from __future__ import annotations

import re

_C_KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch",
    "typedef", "union", "unsigned", "void", "volatile", "while",
}


def c_identifier(name: str, prefix: str, taken: set[str], limit: int = 48) -> str:
    """A C identifier `prefix` + the name's letters/digits, unique within `taken`."""
    core = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_")[:limit] or "x"
    base = f"{prefix}{core}"
    ident, n = base, 1
    while ident in taken or ident in _C_KEYWORDS:
        ident = f"{base}_{n}"
        n += 1
    taken.add(ident)
    return ident


def c_string(text: str) -> str:
    """`text` as a C string literal: printable ASCII kept, everything else octal-escaped."""
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        ch = chr(byte)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 32 <= byte < 127:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def c_comment(text: str) -> str:
    """`text` made safe inside a /* */ comment."""
    safe = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
    return safe.replace("*/", "* /").replace("/*", "/ *")
