"""docs/c-api.md is what runtime/api_doc.py generates from the public header, and that
reference covers every declaration the header has."""

from __future__ import annotations

import re

from kiln.runtime import Status, api_doc
from kiln.runtime.header import ABI_HEADER, render_header


def test_c_api_doc_is_up_to_date():
    written = api_doc.DOC_PATH.read_text() if api_doc.DOC_PATH.exists() else ""
    assert written == api_doc.render(), (
        f"docs/c-api.md is stale: regenerate it with `{api_doc.COMMAND}`")


def test_every_function_of_the_abi_is_documented():
    prototypes = ABI_HEADER.read_text().split("/* @prototypes-begin */")[1]
    declared = re.findall(r"^KILN_EXPORT .*?KILN_API\((\w+)\)\(", prototypes, re.M)
    _, decls = api_doc.parse_header(render_header(api_doc.EXAMPLE))
    documented = [name for d in decls if d.kind == "function" for name in d.names]
    assert documented == ["kiln_" + name for name in declared]
    assert all(d.doc for d in decls)


def test_every_status_has_a_meaning():
    _, decls = api_doc.parse_header(render_header(api_doc.EXAMPLE))
    (status,) = [d for d in decls if d.names == ["kiln_status"]]
    meanings = {m.name: m for m in status.members if isinstance(m, api_doc.Member)}
    assert {name: int(m.value) for name, m in meanings.items()} == \
        {f"KILN_{s.name}": s.value for s in Status}
    assert all(m.doc for m in meanings.values())


def test_a_declaration_without_a_comment_is_refused():
    header = render_header(api_doc.EXAMPLE).replace(
        "/* The model's name, never NULL. */\n", "")
    try:
        api_doc.parse_header(header)
    except ValueError as exc:
        assert "kiln_model_name has no comment" in str(exc)
    else:
        raise AssertionError("an undocumented function was accepted")
