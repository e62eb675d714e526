"""Einsum as IR transpose / reduce_sum / reshape / matmul.

Operands are contracted left to right. For a pair, each index is a batch index (in both, and
needed later), a contracted index (in both, not needed later), or kept by one side only;
indices of one operand that nothing needs are summed away first. The pair becomes one batched
matmul [B, M, K] x [B, K, N] between transposes and reshapes, so exporters' attention einsums
('bhid,bhjd->bhij', 'bhij,bhjd->bhid') land on the matmul kernels. Ellipsis is supported;
an index repeated within one operand first takes that operand's diagonal.
"""

from __future__ import annotations

import math

from ..registry import converter
from .common import reshape


def _parse(ctx, equation: str, operands) -> tuple[list[str], str]:
    """Each operand's index letters and the output's, with '...' spelled out."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        ctx.fail(f"equation '{equation}' names {len(terms)} operands, the node has "
                 f"{len(operands)}")
    used = set(c for c in equation if c.isalpha())
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used]
    ellipsis_rank = max((x.type.rank - len(t.replace("...", "")) for t, x in
                         zip(terms, operands) if "..." in t), default=0)
    dots = "".join(spare[:ellipsis_rank])
    expanded = []
    for term, x in zip(terms, operands):
        if "..." in term:
            own = x.type.rank - len(term.replace("...", ""))
            term = term.replace("...", dots[ellipsis_rank - own:])
        if len(term) != x.type.rank:
            ctx.fail(f"einsum term '{term}' does not match an operand of rank {x.type.rank}")
        expanded.append(term)
    if arrow:
        output = rhs.replace("...", dots)
    else:
        counts = {c: "".join(expanded).count(c) for c in "".join(expanded)}
        output = dots + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in dots))
    return expanded, output


def _sum_away(ctx, x, term: str, keep: set[str]):
    axes = tuple(i for i, c in enumerate(term) if c not in keep)
    if not axes:
        return x, term
    x = ctx.emit("reduce_sum", [x], axes=axes, keepdims=0)
    return x, "".join(c for c in term if c in keep)


def _permute(ctx, x, term: str, order: str):
    if term == order:
        return x
    return ctx.emit("transpose", [x], perm=tuple(term.index(c) for c in order))


def _pair(ctx, a, ta: str, b, tb: str, needed: set[str]):
    """Contract two operands; the result keeps the indices in `needed`."""
    a, ta = _sum_away(ctx, a, ta, needed | set(tb))
    b, tb = _sum_away(ctx, b, tb, needed | set(ta))
    size = {**dict(zip(ta, a.shape)), **dict(zip(tb, b.shape))}
    for c in set(ta) & set(tb):
        if a.shape[ta.index(c)] != b.shape[tb.index(c)]:
            ctx.fail(f"einsum index '{c}' has sizes {a.shape[ta.index(c)]} and "
                     f"{b.shape[tb.index(c)]} (broadcasting is not supported)")
    batch = "".join(c for c in ta if c in tb and c in needed)
    contract = "".join(c for c in ta if c in tb and c not in needed)
    left = "".join(c for c in ta if c not in tb)
    right = "".join(c for c in tb if c not in ta)
    dim = lambda letters: math.prod(size[c] for c in letters)   # noqa: E731
    a3 = reshape(ctx, _permute(ctx, a, ta, batch + left + contract),
                 (dim(batch), dim(left), dim(contract)))
    b3 = reshape(ctx, _permute(ctx, b, tb, batch + contract + right),
                 (dim(batch), dim(contract), dim(right)))
    product = ctx.emit("matmul", [a3, b3])
    term = batch + left + right
    return reshape(ctx, product, tuple(size[c] for c in term)), term


@converter("Einsum", since=12)
def einsum(ctx, *operands, equation=""):
    if not operands or any(x is None for x in operands):
        ctx.fail("Einsum needs at least one operand")
    terms, output = _parse(ctx, equation, operands)
    from .rearrange import diagonal   # a repeated index in one term takes a diagonal
    operands, terms = zip(*[diagonal(ctx, x, t) for x, t in zip(operands, terms)])
    x, term = operands[0], terms[0]
    for index in range(1, len(operands)):
        later = set(output).union(*terms[index + 1:])
        x, term = _pair(ctx, x, term, operands[index], terms[index], later)
    x, term = _sum_away(ctx, x, term, set(output))
    if set(term) != set(output):
        ctx.fail(f"einsum output '{output}' names indices no operand has")
    return _permute(ctx, x, term, output)
