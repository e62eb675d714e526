"""The register-blocked float32 GEMM schedule every dense lowering shares.

C[m, n] = sum_k A[m, k] * B[k, n] is computed in tiles of `mr` rows by `nr` = nv * lanes
columns: one named vector accumulator per (row, vector), straight-line code (measured here:
compilers keep named accumulators in registers, arrays of them in memory). Per k step the
microkernel loads nv vectors of B, splats mr scalars of A and does mr * nv fused
multiply-adds:

    for k in [0, K):                      c{i}_{v} += splat(A(i, k)) * B(k, v*lanes ...)
        b0 = B[k, 0:8]; b1 = B[k, 8:16]
        a0 = splat(A[0, k]); c0_0 += a0 * b0; c0_1 += a0 * b1; ...

The tile is then written to a small local buffer and a scalar loop applies the fused
epilogue (bias, activation, residual) on its way to the output, clipping ragged edges.
Where A and B come from (packed weight panels, an im2col workspace, activation rows) is the
caller's: it passes index functions. The tile shape is the schedule's parameter (chosen from
the target's vector width here; an autotuner may search it later).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...compiler.dtypes import DType
from .. import kernel_ir as K
from .gemm_micro import shared_call


@dataclass(frozen=True)
class Tile:
    """A microkernel shape: `mr` rows by `nv` vectors of `lanes` float32 columns."""

    lanes: int
    mr: int
    nv: int

    @property
    def nr(self) -> int:
        return self.lanes * self.nv


def tile_for(vector_bits: int) -> Tile | None:
    """The register tile for a vector width (None: no vector microkernel, use scalar code).
    AVX-512 has 32 registers: 14x2 accumulators + 2 B vectors + 1 splat; AVX2 has 16: 6x2."""
    if vector_bits >= 512:
        return Tile(16, 14, 2)
    if vector_bits >= 256:
        return Tile(8, 6, 2)
    return None


def microkernel_bits(target, cpu: str | None = None) -> int:
    """The vector width the microkernels may use for `target` and `cpu`: 0 (scalar loops)
    unless the target declares the "vector" capability and its CPU has FMA."""
    if "vector" not in target.capabilities:
        return 0
    if target.elf_machine == "x86_64":
        from ...targets.x86_64 import cpu_vector_bits
        return cpu_vector_bits(cpu)
    return target.vector_bits if "fma" in target.features else 0


def cpu_features(target, cpu: str | None = None) -> frozenset[str]:
    """The ISA features of CPU `cpu` of `target` (None or 'native': this host's on x86-64),
    spelt as /proc/cpuinfo does ("avx512_vnni"): what a kernel entry may require."""
    if target.elf_machine == "x86_64":
        from ...targets.x86_64 import with_cpu
        return frozenset(with_cpu(target, cpu or "native").features)
    return frozenset(target.features)


def pack_rows(matrix: np.ndarray, mr: int) -> np.ndarray:
    """A [M, K] matrix as consecutive panels of `mr` rows, each stored k-major ([K][mr]) so
    the microkernel reads its splats contiguously; the last panel has M % mr rows."""
    m, k = matrix.shape
    parts = []
    for start in range(0, m, mr):
        parts.append(np.ascontiguousarray(matrix[start:start + mr].T).reshape(-1))
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def pack_columns(matrix: np.ndarray, nr: int) -> np.ndarray:
    """A [K, N] matrix as panels of `nr` columns ([N/nr][K][nr]), the last zero-padded."""
    k, n = matrix.shape
    panels = -(-n // nr)
    padded = np.zeros((k, panels * nr), np.float32)
    padded[:, :n] = matrix
    return np.ascontiguousarray(padded.reshape(k, panels, nr).transpose(1, 0, 2)).reshape(-1)


def vec_var(names: K.Names, hint: str, lanes: int) -> K.VecVar:
    return K.VecVar(names.var(hint).name, lanes)


def microkernel(names: K.Names, tile: Tile, rows: int, depth: int,
                a_at: Callable[[int, K.Expr], K.Expr],
                b_at: Callable[[K.Expr, int], K.Expr],
                out: K.Buffer) -> list[K.Stmt]:
    """Accumulate a rows x nr tile over k in [0, depth) and store it, row-major with row
    length nr, to `out` (a local tile buffer). a_at(i, k): the scalar A[i, k];
    b_at(k, v): the vector B[k, v*lanes : (v+1)*lanes]. Where the accesses have constant
    strides this is a call of the module's shared microkernel function (gemm_micro)."""
    call = shared_call(tile.lanes, rows, tile.nv, depth, a_at, b_at, out, tile.nr)
    if call is not None:
        return [call]
    lanes = tile.lanes
    zero = K.Broadcast(K.const(0.0, DType.float32), lanes)
    accs = [[vec_var(names, f"c{i}_{v}", lanes) for v in range(tile.nv)] for i in range(rows)]
    stmts: list[K.Stmt] = [K.Let(acc, zero) for row in accs for acc in row]
    stmts.append(fma_loop(names, tile, rows, K.const(0), K.const(depth), a_at, b_at, accs))
    stmts += [K.VecStore(out, K.const(i * tile.nr + v * lanes), accs[i][v], lanes)
              for i in range(rows) for v in range(tile.nv)]
    return stmts


def merged_shape(shape, out_shape, spans: list[tuple[int, int]]) -> list[int] | None:
    """`shape` (broadcastable to `out_shape`) with each span [lo, hi) of out dims merged into
    one dim, or None where a span mixes broadcast and full dims (it cannot be merged)."""
    rank = len(out_shape)
    full = [1] * (rank - len(shape)) + list(shape)
    merged: list[int] = []
    for lo, hi in spans:
        dims = full[lo:hi]
        if all(d == 1 for d in dims):
            merged.append(1)
        elif list(dims) == list(out_shape[lo:hi]):
            merged.append(int(np.prod(dims)))
        else:
            return None
    return merged


def fma_loop(names: K.Names, tile: Tile, rows: int, k_lo: K.Expr, k_hi: K.Expr, a_at, b_at,
             accs: list[list[K.Var]]) -> K.For:
    """The register tile's K loop: load nv B vectors, splat each row's A, accs += a * b."""
    lanes = tile.lanes
    k = names.var("k")
    bs = [vec_var(names, f"b{v}", lanes) for v in range(tile.nv)]
    step: list[K.Stmt] = [K.Let(b, b_at(k, v)) for v, b in enumerate(bs)]
    for i in range(rows):
        a = vec_var(names, f"a{i}", lanes)
        step.append(K.Let(a, K.Broadcast(a_at(i, k), lanes)))
        step += [K.Assign(accs[i][v], K.fma(accs[i][v], a, bs[v])) for v in range(tile.nv)]
    return K.For(k, k_lo, k_hi, step)
