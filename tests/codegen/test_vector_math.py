"""Vector exp and erf (codegen/lower/vector_math.py), written once as kernel-IR Functions:
printed by the C renderer and by the LLVM IR renderer, run on the host, they agree with
math.exp / math.erf (in float64) over normal, overflowing, underflowing and special inputs."""

from __future__ import annotations

import ctypes
import math
import subprocess

import numpy as np
import pytest

from kiln.codegen import kernel_ir as K
from kiln.codegen.c_renderer import CRenderer
from kiln.codegen.lower import vector_math
from kiln.compiler.dtypes import DType
from kiln.targets import get_target
from kiln.targets.toolchain import BASE_CFLAGS, compiler_command

F32 = DType.float32
N = 4096   # inputs per run: a multiple of every lane count

PRELUDE = r"""
#include <stdint.h>
typedef struct { unsigned char *arena; const void *const *inputs; void *const *outputs;
                 void *pool; } kiln_exec;
__attribute__((visibility("hidden"))) const unsigned char kiln_weights[64];
"""

RUN = r"""
void run(const float *x, float *y) {
    const void *ins[1] = {x};
    void *outs[1] = {y};
    kiln_exec e = {0, ins, outs, 0};
    k_test(&e, 0, %d);
}
"""


def math_kernel(fn: K.Function, lanes: int) -> K.Kernel:
    """y[t*lanes ...] = fn(x[t*lanes ...]) for t in [0, N / lanes)."""
    x = K.Buffer("x", F32, N, "input", 0)
    y = K.Buffer("y", F32, N, "output", 0)
    t = K.Var("t")
    load = K.VecLoad(x, t * lanes, lanes) if lanes > 1 else K.Load(x, t)
    value = K.Apply(fn, (load,))
    store = K.VecStore(y, t * lanes, value, lanes) if lanes > 1 else K.Store(y, t, value)
    return K.Kernel("k_test", "test", [x, y],
                    [K.For(t, K.const(0), K.const(N // lanes), [store], "parallel")])


def build_c(kernel: K.Kernel, tmp_path) -> ctypes.CDLL:
    renderer = CRenderer()
    parts = [PRELUDE] + [renderer.function(fn) for fn in K.functions_called(kernel.body)]
    parts += [renderer.kernel(kernel), RUN % kernel.parallel_loop.stop.value]
    (tmp_path / "c.c").write_text("\n".join(parts))
    command = [*compiler_command(get_target("host")), *BASE_CFLAGS, "-shared", "-fPIC",
               "c.c", "-o", "c.so"]
    subprocess.run(command, cwd=tmp_path, check=True)
    return ctypes.CDLL(str(tmp_path / "c.so"))


def build_llvm(kernel: K.Kernel, tmp_path) -> ctypes.CDLL:
    from kiln.codegen.llvm_module import emit_object, render_module, target_triple

    host = get_target("host")
    module = str(render_module([kernel], target_triple(host)))
    (tmp_path / "k.o").write_bytes(emit_object(module, host))
    (tmp_path / "h.c").write_text(PRELUDE + "void k_test(const kiln_exec *e, int64_t lo, "
                                  "int64_t hi);\n" + RUN % kernel.parallel_loop.stop.value)
    subprocess.run([*compiler_command(host), "-shared", "-fPIC", "-O2", "h.c", "k.o",
                    "-o", "l.so"], cwd=tmp_path, check=True)
    return ctypes.CDLL(str(tmp_path / "l.so"))


BUILDERS = {"c": build_c, "llvm": build_llvm}


def inputs(lo: float, hi: float) -> np.ndarray:
    """N float32s: specials (+-0, +-inf, NaN, the largest and a subnormal), then a dense
    sweep of [lo, hi], then a sparse one of a wider range."""
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 3.4028235e38,
                         -3.4028235e38, 1e-40, -1e-40, 1e30, -1e30], np.float32)
    dense = np.linspace(lo, hi, N - len(specials) - 512, dtype=np.float32)
    wide = np.linspace(-2 * max(abs(lo), hi), 2 * max(abs(lo), hi), 512, dtype=np.float32)
    return np.concatenate([specials, dense, wide]).astype(np.float32)


def run(lib: ctypes.CDLL, x: np.ndarray) -> np.ndarray:
    y = np.full_like(x, 12345.0)
    lib.run(x.ctypes.data_as(ctypes.c_void_p), y.ctypes.data_as(ctypes.c_void_p))
    return y


def exp_reference(x: float) -> float:
    if math.isnan(x):
        return math.nan
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def ulps(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """|actual - expected| in units of the float32 spacing at `expected` (float64)."""
    spacing = np.spacing(np.abs(expected).astype(np.float32)).astype(np.float64)
    return np.abs(actual.astype(np.float64) - expected) / spacing


def evaluate(function, renderer: str, lanes: int, lo: float, hi: float, tmp_path):
    """(x, y): y = function(lanes) on inputs(lo, hi), printed by `renderer`, run here."""
    lib = BUILDERS[renderer](math_kernel(function(lanes), lanes), tmp_path)
    x = inputs(lo, hi)
    return x, run(lib, x)


LANES_AND_RENDERERS = pytest.mark.parametrize(
    "lanes, renderer", [(lanes, r) for lanes in (1, 8, 16) for r in sorted(BUILDERS)])


@LANES_AND_RENDERERS
def test_exp_within_two_ulp(renderer, lanes, tmp_path):
    x, y = evaluate(vector_math.expf, renderer, lanes, -110.0, 95.0, tmp_path)
    expected = np.array([exp_reference(float(v)) for v in x])
    finite = np.isfinite(expected) & (expected < np.finfo(np.float32).max)
    assert ulps(y[finite], expected[finite]).max() <= 2.0
    overflow = np.isinf(expected) & (expected > 0) | (expected >= np.finfo(np.float32).max)
    assert np.all(np.isinf(y[overflow]) | (y[overflow] >= np.finfo(np.float32).max))
    assert np.all(np.isnan(y[np.isnan(x)]))
    assert y[x == -np.inf].tolist() == [0.0] and y[x == np.inf].tolist() == [np.inf]
    assert np.all(y[(x == 0)] == 1.0)


@LANES_AND_RENDERERS
def test_erf_within_its_bound(renderer, lanes, tmp_path):
    x, y = evaluate(vector_math.erff, renderer, lanes, -6.0, 6.0, tmp_path)
    expected = np.array([math.erf(float(v)) if not math.isnan(v) else math.nan for v in x])
    real = ~np.isnan(x)
    assert np.abs(y[real] - expected[real]).max() <= 5e-7
    assert np.all(np.isnan(y[~real]))
    zeros = y[x == 0]   # +0 and -0 keep their sign
    assert zeros.tolist() == [0.0, 0.0] and list(np.signbit(zeros)) == [False, True]


def test_c_prints_each_function_once_where_called():
    fn = vector_math.erff(8)
    lanes = 8
    kernel = math_kernel(fn, lanes)
    called = K.functions_called(kernel.body)
    assert [f.name for f in called] == ["kiln_erff_v8"]
    assert vector_math.erff(8) is fn   # one Function per lane count: one definition
    text = CRenderer().function(fn)
    assert text.count("static inline kiln_v8float32 kiln_erff_v8(kiln_v8float32 x)") == 1
