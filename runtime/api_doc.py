"""The C API reference, docs/c-api.md, generated from the public header a compile writes.

    python -m kiln.runtime.api_doc --output docs/c-api.md     (no --output: to stdout)

It renders OUT.h with render_header, the function every compile calls (the kiln_abi.h blocks
and templates/header.h.j2), for a small example model with the default prefix kiln_, then
reads that text: each declaration (macro, enum, struct, opaque type, prototype) with the
comment just above it, the comments beside enum constants and struct fields, and the
header's opening comment. The comments are the reference's words: to change the reference,
change them and regenerate. A declaration without a comment is an error, and
tests/runtime/test_api_doc.py fails while docs/c-api.md differs from what this writes.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .abi import DEFAULT_PREFIX, ModelSpec, TensorSpec
from .header import render_header

#: The model whose header is rendered: only the opening comment and the model's own macros
#: (counts, workspace size, thread budget) depend on it.
EXAMPLE = ModelSpec(
    name="model",
    inputs=(TensorSpec("input", "float32", 1, (1, 3, 224, 224)),),
    outputs=(TensorSpec("logits", "float32", 1, (1, 1000)),),
    workspace_size=1204224,
    threads_max=8,
)
DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "c-api.md"
COMMAND = "python -m kiln.runtime.api_doc --output docs/c-api.md"


@dataclass
class Member:
    """An enum constant or a struct field, with the comment beside it."""

    name: str
    value: str          # the constant's value, or the field's C type
    doc: str


@dataclass
class Decl:
    """One documented declaration, or several sharing one comment (input_info and
    output_info): what it is, its names, its C text and its comment."""

    kind: str                        # "macro", "enum", "struct", "opaque" or "function"
    names: list[str]
    code: list[str]                  # the declarations as the header has them, one each
    doc: str
    members: list[Member | str] = field(default_factory=list)   # a str: a note between them


_GUARDS = re.compile(r"KILN_PUBLIC_H_\w*|KILN_ABI_V\d+_TYPES")


def _comment_text(lines: list[str]) -> str:
    """A /* */ comment's words, its lines joined, blank comment lines kept as breaks."""
    words = []
    for line in lines:
        line = line.strip()
        line = re.sub(r"^/\*+", "", line)
        line = re.sub(r"\*/$", "", line)
        line = re.sub(r"^\* ?", "", line.strip()).strip()
        words.append(line if line else "\n\n")
    return re.sub(r" *\n\n *", "\n\n", " ".join(words)).strip()


def _split_trailing(line: str) -> tuple[str, str]:
    """`code /* comment */` as (code, comment); a comment may be left open (continued)."""
    code, sep, comment = line.partition("/*")
    return code.rstrip(), (sep + comment) if sep else ""


def _take_comment(lines: list[str], i: int) -> tuple[list[str], int]:
    """The comment starting at lines[i] (its lines) and the index after it."""
    taken = []
    while True:
        taken.append(lines[i])
        if "*/" in lines[i]:
            return taken, i + 1
        i += 1


def _members(body: list[str], kind: str) -> list[Member | str]:
    """The constants of an enum body or the fields of a struct body, with their comments."""
    members: list[Member | str] = []
    i = 0
    while i < len(body):
        line = body[i]
        if not line.strip():
            i += 1
            continue
        if line.strip().startswith("/*"):
            comment, i = _take_comment(body, i)
            members.append(_comment_text(comment))
            continue
        code, comment = _split_trailing(line)
        i += 1
        if comment and "*/" not in comment:       # the comment goes on below
            rest, i = _take_comment(body, i)
            comment = "\n".join([comment, *rest])
        doc = _comment_text(comment.splitlines()) if comment else ""
        if kind == "enum":
            for item in filter(None, (part.strip() for part in code.split(","))):
                name, _, value = (s.strip() for s in item.partition("="))
                members.append(Member(name, value, doc))
        else:
            match = re.fullmatch(r"\s*(.*?)(\w+);", code)
            if match is None:
                raise ValueError(f"cannot read the struct field {line.strip()!r}")
            members.append(Member(match.group(2), match.group(1).strip(), doc))
    return members


def parse_header(text: str) -> tuple[str, list[Decl]]:
    """The header's opening comment (its words, lines kept) and its declarations in order."""
    lines = text.splitlines()
    opening, i = _take_comment(lines, 0)
    decls: list[Decl] = []
    doc, group = "", None            # the comment being applied, the Decl it went to
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            doc, group, i = "", None, i + 1
            continue
        if stripped.startswith("/*"):
            comment, i = _take_comment(lines, i)
            doc, group = _comment_text(comment), None
            continue
        if stripped.startswith("#define"):
            _, name, *value = stripped.split(None, 2)
            i += 1
            if _GUARDS.fullmatch(name):
                continue
            code = f"#define {name} {' '.join(value)}".rstrip()
            group = _add(decls, group, "macro", name, [code], doc)
            continue
        if stripped.startswith(("#", "extern", "}")):
            doc, group, i = "", None, i + 1
            continue
        start = i
        compound = re.match(r"(typedef )?(enum|struct) ?(\w*) ?\{", stripped)
        while not (lines[i].strip().startswith("}") if compound
                   else lines[i].rstrip().endswith(";")):
            i += 1
        i += 1
        code = lines[start:i]
        if compound:
            kind = compound.group(2)
            tail = re.fullmatch(r"\}\s*(\w*)\s*;", code[-1].strip())
            members = _members(code[1:-1], kind)
            name = (tail.group(1) if tail and tail.group(1) else compound.group(3)) or \
                _common_prefix([m.name for m in members if isinstance(m, Member)]) + "*"
            new = Decl(kind, [name], ["\n".join(code)], doc, members)
            decls.append(new)
            group = new
            continue
        joined = " ".join(part.strip() for part in code)
        opaque = re.fullmatch(r"typedef struct (\w+) (\w+);", joined)
        if opaque:
            group = _add(decls, group, "opaque", opaque.group(2), [joined], doc)
            continue
        function = re.fullmatch(r"(.+?\W)(\w+)\((.*)\);", joined)
        if function is None:
            raise ValueError(f"cannot read the declaration {joined!r}")
        group = _add(decls, group, "function", function.group(2), [joined], doc)
    for decl in decls:
        if not decl.doc:
            raise ValueError(f"{', '.join(decl.names)} has no comment above it in the header "
                             f"(kiln_abi.h or templates/header.h.j2): document it there")
    return "\n".join(line.rstrip() for line in opening), decls


def _common_prefix(names: list[str]) -> str:
    """What the names of an anonymous enum's constants share, up to an underscore."""
    shared = names[0] if names else ""
    for name in names[1:]:
        while not name.startswith(shared):
            shared = shared[:-1]
    return shared[:shared.rfind("_") + 1]


def _add(decls: list[Decl], group: Decl | None, kind: str, name: str, code: list[str],
         doc: str) -> Decl:
    """Add a declaration: to `group` when it is one more under the same comment."""
    if group is not None and group.kind == kind and group.doc == doc:
        group.names.append(name)
        group.code.extend(code)
        return group
    decl = Decl(kind, [name], code, doc)
    decls.append(decl)
    return decl


def _prose(text: str) -> str:
    """A comment's words as markdown text: C's `*p` and `KILN_DTYPE_*` are not emphasis."""
    return text.replace("*", "\\*")


def _cell(text: str) -> str:
    return _prose(text).replace("|", "\\|").replace("\n\n", " ")


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _table(members: list[Member], header: tuple[str, str, str]) -> list[str]:
    """A markdown table of `members`, without the meaning column when none has one."""
    if not any(m.doc for m in members):
        return [f"| {header[0]} | {header[1]} |", "|---|---|",
                *(f"| `{m.name}` | `{m.value}` |" for m in members)]
    rows = [f"| {' | '.join(header)} |", "|---|---|---|"]
    rows += [f"| `{m.name}` | `{m.value}` | {_cell(m.doc) or ' '} |" for m in members]
    return rows


def _members_text(decl: Decl) -> list[str]:
    header = ("constant", "value", "meaning") if decl.kind == "enum" else \
        ("field", "type", "meaning")
    out, run = [], []
    for member in [*decl.members, None]:
        if isinstance(member, Member):
            run.append(member)
            continue
        if run:
            out += [*_table(run, header), ""]
            run = []
        if isinstance(member, str):
            out += [_prose(member), ""]
    return out


def _title(decl: Decl) -> str:
    return ", ".join(f"`{name}`" for name in decl.names)


def _section(decl: Decl) -> list[str]:
    lines = [f"### {_title(decl)}", "", "```c", *decl.code, "```", "", _prose(decl.doc), ""]
    if decl.members:
        lines += _members_text(decl)
    return lines


_KINDS = (("macro", "Macros",
           "Those naming this model (`KILN_NUM_INPUTS` and below) carry the upper-cased "
           "prefix and have the example model's values; the ABI's own are the same in "
           "every header."),
          ("enum", "Enumerations", ""),
          ("struct", "Structures", ""),
          ("opaque", "Opaque types", ""),
          ("function", "Functions",
           "Every function name carries the model's symbol prefix (`kiln_` here)."))


def render(prefix: str = DEFAULT_PREFIX) -> str:
    """docs/c-api.md: the reference of the header a compile writes with `prefix`."""
    header = render_header(EXAMPLE, prefix, "model.h")
    opening, decls = parse_header(header)
    functions = [(name, _slug(_title(d))) for d in decls if d.kind == "function"
                 for name in d.names]
    lines = [
        "# The Kiln C API",
        "",
        f"Generated by `{COMMAND}` from the header `kiln compile` writes beside each "
        f"library (`OUT.h`, rendered by `kiln/runtime/header.py` from "
        f"`runtime/kiln_abi.h` and `runtime/templates/header.h.j2`), here for an example "
        f"model with the default symbol prefix `{prefix}`. Do not edit it: change the "
        f"header's comments and regenerate.",
        "",
        "The header's opening comment lists the model's tensors and the call sequence:",
        "",
        "```c",
        opening,
        "```",
        "",
        "Functions: " + ", ".join(f"[`{name}`](#{slug})" for name, slug in functions)
        + ".",
        "",
    ]
    for kind, title, intro in _KINDS:
        chosen = [d for d in decls if d.kind == kind]
        if not chosen:
            continue
        lines += [f"## {title}", ""] + ([intro, ""] if intro else [])
        for decl in chosen:
            lines += _section(decl)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiln.runtime.api_doc",
                                     description="Write the C API reference (markdown) "
                                                 "generated from the public header.")
    parser.add_argument("--output", metavar="FILE", help="write it there (default: stdout)")
    args = parser.parse_args(argv)
    text = render()
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
