"""The elementwise kernel: a chain of unary, binary and ternary ops as one loop nest."""

from __future__ import annotations

from ...compiler.ops import OPS
from ..lower.elementwise import lower_elementwise
from .loops import loops

ELEMENTWISE_OPS = tuple(sorted(name for name, op in OPS.items() if op.is_elementwise))

loops("elementwise_loops", ELEMENTWISE_OPS,
      "a chain of elementwise ops over coalesced dims: vector inner loop, parallel outer",
      lower_elementwise, ops_label=f"the {len(ELEMENTWISE_OPS)} elementwise ops")
