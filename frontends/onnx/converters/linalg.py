"""Linear algebra on small matrices: Det, by Laplace expansion over compile-time-sized
matrices (elementwise ops on the entries, shared minors memoized: O(n * 2^n) products)."""

from __future__ import annotations

import numpy as np

from ..registry import converter
from .common import reshape

#: The largest matrix Det expands (2^n minors).
MAX_DET_SIZE = 10


@converter("Det", since=11)
def det(ctx, x):
    """The determinant of each [..., n, n] matrix."""
    if x.type.rank < 2 or x.shape[-1] != x.shape[-2]:
        ctx.fail(f"Det needs square matrices [..., n, n], got shape {list(x.shape)}")
    if not x.dtype.is_float:
        ctx.fail(f"Det takes floating-point input, not {x.dtype.name}")
    n = x.shape[-1]
    batch = x.shape[:-2]
    if n == 0:
        return ctx.const(np.ones(batch, dtype=x.dtype.numpy))
    if n > MAX_DET_SIZE:
        ctx.fail(f"Det of {n}x{n} matrices is over Kiln's limit of {MAX_DET_SIZE}",
                 "compute it with an LU decomposition outside the model")
    rank = x.type.rank

    def entry(i: int, j: int):
        starts = [0] * rank
        ends = list(x.shape)
        starts[-2], ends[-2], starts[-1], ends[-1] = i, i + 1, j, j + 1
        part = ctx.emit("slice", [x], starts=tuple(starts), ends=tuple(ends),
                        steps=(1,) * rank)
        return reshape(ctx, part, batch)

    entries = {(i, j): entry(i, j) for i in range(n) for j in range(n)}
    memo: dict[tuple[int, ...], object] = {}

    def minor(columns: tuple[int, ...]):
        """The determinant of rows n-len(columns).. and `columns`."""
        if columns in memo:
            return memo[columns]
        row = n - len(columns)
        if len(columns) == 1:
            result = entries[(row, columns[0])]
        else:
            result = None
            for k, col in enumerate(columns):
                term = ctx.emit("mul", [entries[(row, col)],
                                        minor(columns[:k] + columns[k + 1:])])
                if result is None:
                    result = term
                else:
                    result = ctx.emit("sub" if k % 2 else "add", [result, term])
        memo[columns] = result
        return result

    return minor(tuple(range(n)))
