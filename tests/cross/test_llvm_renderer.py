"""The LLVM IR renderer on hand-written kernel IR: vector nodes (the microkernel vocabulary)
run correctly on the host, and a node it cannot print is a clear internal error; a model with
a GEMM, GELU and softmax compiled with emit="llvm" gets vector code and matches ONNX Runtime."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import kiln

from kiln.codegen import kernel_ir as K
from kiln.codegen.llvm_module import emit_object, render_module, target_triple
from kiln.codegen.llvm_renderer import CAPABILITIES, RenderError
from kiln.codegen.lower.gemm import microkernel_bits
from kiln.compiler.dtypes import DType
from kiln.runtime import load
from kiln.targets import get_target
from reference import assert_matches, run_onnxruntime

HARNESS = r"""
#include <stdint.h>
typedef struct { unsigned char *arena; const void *const *inputs; void *const *outputs;
                 void *pool; } kiln_exec;
__attribute__((visibility("hidden"))) const unsigned char kiln_weights[64];
void k_test(const kiln_exec *e, int64_t lo, int64_t hi);
void run(const float *x, float *y) {
    const void *ins[1] = {x};
    void *outs[1] = {y};
    kiln_exec e = {0, ins, outs, 0};
    k_test(&e, 0, 2);
}
"""


def axpy_kernel() -> K.Kernel:
    """y[t*8 : t*8+8] = 1 + sum over j<2 of x[t*16 + j*8 ...] * 2, eight lanes at a time."""
    x = K.Buffer("x", DType.float32, 32, "input", 0)
    y = K.Buffer("y", DType.float32, 16, "output", 0)
    t, j = K.Var("t"), K.Var("j")
    acc = K.VecVar("acc", 8)
    body = [K.Let(acc, K.Broadcast(K.const(1.0, DType.float32), 8)),
            K.For(j, K.const(0), K.const(2), [
                K.Assign(acc, K.fma(acc, K.VecLoad(x, t * 16 + j * 8, 8),
                                    K.Broadcast(K.const(2.0, DType.float32), 8)))]),
            K.VecStore(y, t * 8, acc, 8)]
    return K.Kernel("k_test", "test", [x, y], [K.For(t, K.const(0), K.const(2), body,
                                                       "parallel")])


def test_renderer_declares_vector_capability():
    assert "vector" in CAPABILITIES


def test_vector_nodes_render_and_run(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("needs a C compiler (cc) to link the harness")
    host = get_target("host")
    module = render_module([axpy_kernel()], target_triple(host))
    assert "<8 x float>" in str(module)
    (tmp_path / "k.o").write_bytes(emit_object(str(module), host))
    (tmp_path / "h.c").write_text(HARNESS)
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "h.c", "k.o", "-o", "t.so"], cwd=tmp_path,
                   check=True)
    lib = ctypes.CDLL(str(tmp_path / "t.so"))
    x = np.arange(32, dtype=np.float32)
    y = np.zeros(16, np.float32)
    lib.run(x.ctypes.data_as(ctypes.c_void_p), y.ctypes.data_as(ctypes.c_void_p))
    expected = 1 + 2 * (x.reshape(2, 2, 8).sum(axis=1)).reshape(16)
    np.testing.assert_allclose(y, expected)


@pytest.mark.parametrize("target", ["arm64", "riscv64-rvv"])
def test_vector_nodes_compile_for_cross_targets(target):
    spec = get_target(target)
    obj = emit_object(str(render_module([axpy_kernel()], target_triple(spec))), spec)
    assert obj[:4] == b"\x7fELF"


@dataclass(frozen=True, eq=False)
class Mystery(K.Expr):
    dtype: DType = DType.float32


def test_unknown_node_is_a_clear_internal_error():
    y = K.Buffer("y", DType.float32, 4, "output", 0)
    kernel = K.Kernel("k_bad", "bad", [y], [K.Store(y, K.const(0), Mystery())])
    with pytest.raises(RenderError, match="cannot print kernel IR node Mystery"):
        render_module([kernel], "x86_64-unknown-linux-gnu")


def test_machine_spec_follows_cpu_option():
    from kiln.codegen.llvm_module import machine_spec

    arm, rv = get_target("arm64"), get_target("riscv64-rvv")
    assert machine_spec(arm, None) == ("generic", "+neon,+fp-armv8", "")
    assert machine_spec(arm, "neoverse-n2")[0] == "neoverse-n2"
    assert machine_spec(rv, "sifive_x280")[0] == "sifive-x280"
    cpu, features, abi = machine_spec(rv, "vlen=512")
    assert (cpu, abi) == ("generic-rv64", "lp64d") and "+v" in features and "+zvl512b" in features


def gemm_gelu_softmax():
    """y = softmax(gelu(x @ w + b)) over rows of 64: GELU as ONNX exports it (with Erf)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((48, 64)).astype(np.float32) * 0.3, "w")
    b = numpy_helper.from_array(rng.standard_normal(64).astype(np.float32), "b")
    consts = [numpy_helper.from_array(np.array(v, np.float32), n)
              for n, v in (("r2", 2 ** 0.5), ("one", 1.0), ("half", 0.5))]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["h"]),
             helper.make_node("Div", ["h", "r2"], ["d"]),
             helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["e1"]),
             helper.make_node("Mul", ["h", "e1"], ["g"]),
             helper.make_node("Mul", ["g", "half"], ["gelu"]),
             helper.make_node("Softmax", ["gelu"], ["y"], axis=-1)]
    graph = helper.make_graph(
        nodes, "gemm_gelu_softmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [40, 48])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [40, 64])], [w, b, *consts])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_llvm_model_gets_vector_code_and_matches_onnxruntime(tmp_path):
    if microkernel_bits(get_target("host")) == 0:
        pytest.skip("the host has no vector microkernels (no FMA)")
    model = gemm_gelu_softmax()
    library = kiln.compile(model, target="host", output=str(tmp_path / "m.so"), emit="llvm",
                           verify=True, keep_sources=str(tmp_path / "src"))
    llvm_ir = (tmp_path / "src" / "kernels.ll").read_text()
    assert "<8 x float>" in llvm_ir or "<16 x float>" in llvm_ir
    assert 'define internal void @"kiln_mk_v' in llvm_ir          # the GEMM microkernel
    assert 'define internal <' in llvm_ir and '@"kiln_erff_v' in llvm_ir   # GELU's vector erf
    x = np.random.default_rng(1).standard_normal((40, 48)).astype(np.float32)
    with load(library, threads=1) as session:
        actual = session.run({"x": x})["y"]
    assert_matches(actual, run_onnxruntime(model, {"x": x})[0])
