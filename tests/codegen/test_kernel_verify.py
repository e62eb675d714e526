"""The kernel-IR verifier over real lowered kernels, and on hand-built malformed ones."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kiln import __version__
from kiln.codegen import kernel_ir as K
from kiln.codegen.kernels import KernelSelector
from kiln.codegen.schedules import KernelTarget
from kiln.codegen.kernel_verify import KernelVerificationError, verify_kernel
from kiln.codegen.lower import vector_math
from kiln.codegen.lower.gemm import microkernel_bits
from kiln.codegen.module import generate
from kiln.codegen.renderers import LLVMRenderer
from kiln.compiler.dtypes import DType
from kiln.frontends.onnx import import_model
from kiln.passes.manager import run_passes
from kiln.targets import get_target


def _model(nodes, inputs, outputs, initializers=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "m", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _f32(name: str, *shape: int):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _init(name: str, *shape: int, seed: int = 0):
    data = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return numpy_helper.from_array(data, name)


def _conv_relu() -> onnx.ModelProto:
    return _model([helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                   helper.make_node("Relu", ["c"], ["y"])],
                  [_f32("x", 1, 3, 8, 8)], [_f32("y", 1, 4, 8, 8)],
                  [_init("w", 4, 3, 3, 3), _init("b", 4, seed=1)])


def _matmul_add() -> onnx.ModelProto:
    return _model([helper.make_node("MatMul", ["x", "w"], ["m"]),
                   helper.make_node("Add", ["m", "b"], ["y"])],
                  [_f32("x", 5, 16)], [_f32("y", 5, 12)],
                  [_init("w", 16, 12), _init("b", 12, seed=1)])


def _softmax_reduce() -> onnx.ModelProto:
    return _model([helper.make_node("Softmax", ["x"], ["s"], axis=-1),
                   helper.make_node("ReduceSum", ["s", "axes"], ["y"], keepdims=0)],
                  [_f32("x", 3, 7)], [_f32("y", 3)],
                  [numpy_helper.from_array(np.array([1], np.int64), "axes")])


def _lowered(model: onnx.ModelProto, vector_bits: int) -> list[K.Kernel]:
    """Every kernel codegen lowers `model` to (collected as the LLVM path collects them)."""
    graph = import_model(model)
    selector = KernelSelector(KernelTarget(vector_bits, 32 << 10, 1 << 20, 2))
    graph.metadata["kernel_choice"] = selector
    graph = run_passes(graph)
    renderer = LLVMRenderer()   # collects the group kernels as it renders them
    generate(graph, "host", __version__, renderer=renderer, selector=selector)
    return renderer.kernels


@pytest.mark.parametrize("build", [_conv_relu, _matmul_add, _softmax_reduce])
@pytest.mark.parametrize("vectors", [False, True])
def test_lowered_kernels_verify(build, vectors):
    bits = microkernel_bits(get_target("host"), None) if vectors else 0
    kernels = _lowered(build(), bits)
    assert kernels
    for kernel in kernels:
        verify_kernel(kernel)


def _buffer(numel: int) -> K.Buffer:
    return K.Buffer("out", DType.float32, numel, "output")


def test_unbound_variable_is_rejected():
    i, j = K.Var("i"), K.Var("j")
    out = _buffer(4)
    body = [K.For(i, K.const(0), K.const(4), [K.Store(out, j, K.const(0.0, DType.float32))])]
    with pytest.raises(KernelVerificationError, match="'j'"):
        verify_kernel(K.Kernel("k_bad", "", [out], body))
    verify_kernel(body, known=["j"])   # a name the caller binds is fine


def test_let_binds_only_after_it():
    x, out = K.Var("x", DType.float32), _buffer(1)
    with pytest.raises(KernelVerificationError, match="'x'"):
        verify_kernel([K.Store(out, K.const(0), x), K.Let(x, K.const(1.0, DType.float32))])
    verify_kernel([K.Let(x, K.const(1.0, DType.float32)), K.Store(out, K.const(0), x)])


def test_constant_store_past_the_extent_is_rejected():
    out = _buffer(4)
    with pytest.raises(KernelVerificationError, match="'out'"):
        verify_kernel([K.Store(out, K.const(4), K.const(0.0, DType.float32))])


def test_loop_index_past_the_extent_is_rejected():
    i, out = K.Var("i"), _buffer(4)
    zero = K.const(0.0, DType.float32)
    verify_kernel([K.For(i, K.const(0), K.const(4), [K.Store(out, i, zero)])])
    with pytest.raises(KernelVerificationError, match=r"'out' at \[1, 4\]"):
        verify_kernel([K.For(i, K.const(0), K.const(4), [K.Store(out, i + 1, zero)])])


def test_guarded_access_is_not_rejected():
    i, out = K.Var("i"), _buffer(4)
    zero = K.const(0.0, DType.float32)
    guarded = K.If(K.binary("<", i + 1, 4), [K.Store(out, i + 1, zero)])
    verify_kernel([K.For(i, K.const(0), K.const(4), [guarded])])


def test_unknown_loop_kind_raises():
    with pytest.raises(ValueError, match="bogus"):
        K.For(K.Var("i"), K.const(0), K.const(2), [], "bogus")
    loop = K.For(K.Var("i"), K.const(0), K.const(2), [], "vector")
    assert loop.kind is K.LoopKind.VECTOR and loop.kind == "vector" and f"{loop.kind}" == "vector"


def test_function_invoked_by_a_function_is_verified():
    n, stray = K.Var("n"), K.Var("stray")
    out = _buffer(4)
    inner = K.Function("inner_bad", [n], [K.Store(out, stray, K.const(0.0, DType.float32))])
    outer = K.Function("outer", [n], [K.Invoke(inner, [n])])
    with pytest.raises(KernelVerificationError, match="function inner_bad: variable 'stray'"):
        verify_kernel([K.Invoke(outer, [K.const(0)])])


def test_malformed_bitcast_is_rejected():
    v, out = K.VecVar("v", 8), K.Buffer("out", DType.int32, 16, "output")
    declare = K.Let(v, K.Broadcast(K.const(1.0, DType.float32), 8))
    verify_kernel([declare, K.VecStore(out, K.const(0), K.bitcast(v, DType.int32), 8)])
    lanes = K.Bitcast(v, DType.int32, 16)                   # 8 lanes read as 16
    with pytest.raises(KernelVerificationError, match="float32x8 to int32x16"):
        verify_kernel([declare, K.VecStore(out, K.const(0), lanes, 16)])
    width = K.Bitcast(K.const(1.0, DType.float32), DType.int64)   # 32 bits read as 64
    with pytest.raises(KernelVerificationError, match="float32 to int64"):
        verify_kernel([K.Store(out, K.const(0), width)])


def test_calls_are_checked_against_the_function():
    exp8 = vector_math.expf(8)
    out = K.Buffer("out", DType.float32, 16, "output")
    wide = K.Broadcast(K.const(1.0, DType.float32), 16)
    with pytest.raises(KernelVerificationError, match="wants float32x8, got float32x16"):
        verify_kernel([K.VecStore(out, K.const(0), K.Apply(exp8, (wide,)), 16)])
    with pytest.raises(KernelVerificationError, match="returns a value"):
        verify_kernel([K.Invoke(exp8, [K.Broadcast(K.const(1.0, DType.float32), 8)])])


def test_functions_called_lists_callees_first():
    x, c = K.VecVar("x", 8), K.Buffer("c", DType.float32, 0, "param")
    gelu_store = K.Function("store_erf", [c, x], [
        K.VecStore(c, K.const(0), vector_math.vector_call("erf", x), 8)])
    out = _buffer(8)
    body = [K.Invoke(gelu_store, [(out, K.const(0)),
                                  K.Broadcast(K.const(0.5, DType.float32), 8)])]
    verify_kernel(body)
    assert [f.name for f in K.functions_called(body)] == ["kiln_erff_v8", "store_erf"]
