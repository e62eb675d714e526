"""The converter registry: (domain, op_type) -> converters by the opset they appear in.

A converter turns one ONNX node into IR through a ConvertContext. It is a plain function
`fn(ctx, *inputs, **attributes)`: inputs are Values (None where an optional input is
absent), attributes arrive as keyword arguments whose defaults are the spec's.
"""

from __future__ import annotations

import bisect
from typing import Callable

Converter = Callable[..., object]

#: (domain, op_type) -> sorted [(since_version, converter)]
CONVERTERS: dict[tuple[str, str], list[tuple[int, Converter]]] = {}

#: ONNX's default domain is spelled "" or "ai.onnx".
DEFAULT_DOMAIN = ""


def normalize_domain(domain: str) -> str:
    return DEFAULT_DOMAIN if domain in ("", "ai.onnx") else domain


def converter(op_type: str, since: int = 1, domain: str = DEFAULT_DOMAIN
              ) -> Callable[[Converter], Converter]:
    """Register `fn` for op_type from opset `since` until the next registered version."""

    def wrap(fn: Converter) -> Converter:
        versions = CONVERTERS.setdefault((normalize_domain(domain), op_type), [])
        if any(v == since for v, _ in versions):
            raise ValueError(f"converter for {op_type} since opset {since} registered twice")
        bisect.insort(versions, (since, fn), key=lambda item: item[0])
        return fn

    return wrap


def lookup(domain: str, op_type: str, opset: int) -> Converter | None:
    """The converter with the highest since-version not above `opset`, or None."""
    versions = CONVERTERS.get((normalize_domain(domain), op_type), [])
    chosen = None
    for since, fn in versions:
        if since <= opset:
            chosen = fn
    return chosen


def supported_ops() -> dict[tuple[str, str], list[int]]:
    return {key: [v for v, _ in versions] for key, versions in CONVERTERS.items()}
