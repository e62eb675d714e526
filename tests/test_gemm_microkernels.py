"""The vector microkernels (conv2d, depthwise conv2d, matmul) on sizes that hit every tile edge:
M, N and K not multiples of the register tile, fused epilogues, groups, strides, dilations
and padding, against ONNX Runtime. Also: the scalar fallback when no vectors are declared,
and the AVX-512 tile builds for an AVX-512 CPU even where this host cannot run it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from reference import assert_matches, run_onnxruntime

import kiln
from kiln.codegen.lower.gemm import microkernel_bits, tile_for
from kiln.targets import get_target

HAS_VECTORS = microkernel_bits(get_target("host")) > 0


def _model(nodes, inputs, output, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, [output], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _f32(rng, *shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _check(compile_and_load, model, feed, threads=2):
    (expected,) = run_onnxruntime(model, feed)
    session = compile_and_load(model, threads=threads)
    (actual,) = session.run(feed).values()
    assert_matches(actual, expected)


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (13, 37, 45), (6, 16, 16), (7, 5, 17),
                                   (29, 64, 33), (2, 300, 3)])
def test_matmul_constant_b_edges(compile_and_load, m, k, n):
    rng = np.random.default_rng(m * 100 + n)
    model = _model(
        [helper.make_node("MatMul", ["x", "W"], ["y"]), helper.make_node("Add", ["y", "b"], ["z"]),
         helper.make_node("Relu", ["z"], ["o"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, m, k])],
        helper.make_tensor_value_info("o", TensorProto.FLOAT, [2, m, n]),
        [numpy_helper.from_array(_f32(rng, k, n), "W"), numpy_helper.from_array(_f32(rng, n), "b")])
    _check(compile_and_load, model, {"x": _f32(rng, 2, m, k)})


@pytest.mark.parametrize("m,k,n", [(7, 9, 32), (13, 64, 16), (1, 3, 48)])
def test_batched_matmul_with_residual(compile_and_load, m, k, n):
    rng = np.random.default_rng(k)
    shape_a, shape_b, shape_o = [2, 3, m, k], [2, 3, k, n], [2, 3, m, n]
    model = _model(
        [helper.make_node("MatMul", ["a", "b"], ["y"]), helper.make_node("Add", ["y", "r"], ["o"])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, shape_a),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, shape_b),
         helper.make_tensor_value_info("r", TensorProto.FLOAT, shape_o)],
        helper.make_tensor_value_info("o", TensorProto.FLOAT, shape_o), [])
    _check(compile_and_load, model, {"a": _f32(rng, *shape_a), "b": _f32(rng, *shape_b),
                                     "r": _f32(rng, *shape_o)})


CONVS = [  # cin, cout, kernel, stride, pad, dilation, group, size
    (5, 13, 3, 1, 1, 1, 1, 11), (6, 8, 3, 2, 1, 1, 2, 10), (3, 20, 7, 2, 3, 1, 1, 23),
    (4, 7, 1, 1, 0, 1, 1, 9), (4, 9, 3, 1, 2, 2, 1, 12), (16, 33, 1, 2, 0, 1, 1, 15),
    (12, 12, 3, 1, 1, 1, 3, 7), (3, 1, 2, 3, 0, 1, 1, 8),
]


@pytest.mark.parametrize("cin,cout,k,s,p,d,group,size", CONVS)
def test_conv_edges_with_epilogue(compile_and_load, cin, cout, k, s, p, d, group, size):
    rng = np.random.default_rng(cin * 31 + cout)
    conv = helper.make_node("Conv", ["x", "W", "b"], ["y"], strides=[s, s], pads=[p] * 4,
                            dilations=[d, d], group=group)
    out = (size + 2 * p - d * (k - 1) - 1) // s + 1
    model = _model(
        [conv, helper.make_node("Add", ["y", "r"], ["z"]), helper.make_node("Relu", ["z"], ["o"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, cin, size, size]),
         helper.make_tensor_value_info("r", TensorProto.FLOAT, [2, cout, out, out])],
        helper.make_tensor_value_info("o", TensorProto.FLOAT, [2, cout, out, out]),
        [numpy_helper.from_array(_f32(rng, cout, cin // group, k, k), "W"),
         numpy_helper.from_array(_f32(rng, cout), "b")])
    _check(compile_and_load, model, {"x": _f32(rng, 2, cin, size, size),
                                     "r": _f32(rng, 2, cout, out, out)})


def _conv_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    return _model([helper.make_node("Conv", ["x", "W"], ["o"], pads=[1] * 4)],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 9, 9])],
                  helper.make_tensor_value_info("o", TensorProto.FLOAT, [1, 16, 9, 9]),
                  [numpy_helper.from_array(_f32(rng, 16, 8, 3, 3), "W")])


@pytest.mark.skipif(not HAS_VECTORS, reason="this host has no AVX2+FMA for the microkernels")
def test_host_uses_the_vector_microkernel(tmp_path):
    kiln.compile(_conv_model(), output=tmp_path / "m.so", keep_sources=tmp_path / "src")
    assert "vector_size" in (tmp_path / "src" / "model.c").read_text()


def test_cpu_without_fma_keeps_the_scalar_loops(tmp_path):
    kiln.compile(_conv_model(), output=tmp_path / "m.so", keep_sources=tmp_path / "src",
                 cpu="x86-64")
    assert "vector_size" not in (tmp_path / "src" / "model.c").read_text()


def test_avx512_tile_builds(tmp_path):
    assert tile_for(512).mr * tile_for(512).nv <= 28   # accumulators fit 32 registers
    kiln.compile(_conv_model(), output=tmp_path / "m.so", keep_sources=tmp_path / "src",
                 cpu="x86-64-v4")
    source = (tmp_path / "src" / "model.c").read_text()
    assert "vector_size(64)" in source


DEPTHWISE = [  # channels, kernel, stride, pads (t, l, b, r), dilation, size, bias
    (8, 3, 1, (1, 1, 1, 1), 1, 11, True), (5, 3, 2, (1, 1, 1, 1), 1, 12, True),
    (7, 5, 2, (2, 2, 2, 2), 1, 17, False), (4, 3, 1, (2, 2, 2, 2), 2, 9, True),
    (3, 3, 3, (0, 0, 0, 0), 1, 10, True), (6, 3, 2, (0, 1, 1, 0), 1, 35, True),
]


@pytest.mark.parametrize("channels,k,s,pads,d,size,bias", DEPTHWISE)
def test_depthwise_conv_with_clip(compile_and_load, channels, k, s, pads, d, size, bias):
    rng = np.random.default_rng(channels * 7 + k)
    inputs = ["x", "W", "b"] if bias else ["x", "W"]
    conv = helper.make_node("Conv", inputs, ["y"], strides=[s, s], pads=list(pads),
                            dilations=[d, d], group=channels)
    initializers = [numpy_helper.from_array(_f32(rng, channels, 1, k, k), "W"),
                    numpy_helper.from_array(np.float32(0), "lo"),
                    numpy_helper.from_array(np.float32(0.5), "hi")]
    if bias:
        initializers.append(numpy_helper.from_array(_f32(rng, channels), "b"))
    model = _model([conv, helper.make_node("Clip", ["y", "lo", "hi"], ["o"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                  [2, channels, size, size])],
                   helper.make_tensor_value_info("o", TensorProto.FLOAT, None), initializers)
    _check(compile_and_load, model, {"x": _f32(rng, 2, channels, size, size)})


# -- the cache-blocked GEMM schedule (gemm_schedule.py) and shared microkernels ----------------

EPILOGUES = {  # name -> (nodes after MatMul y, extra graph inputs), output "o"
    "bias_clip": lambda: ([helper.make_node("Add", ["y", "b"], ["z"]),
                           helper.make_node("Clip", ["z", "lo", "hi"], ["o"])], ["b"]),
    "residual_relu": lambda: ([helper.make_node("Add", ["y", "r"], ["z"]),
                               helper.make_node("Relu", ["z"], ["o"])], ["r"]),
    "row_scale_tanh": lambda: ([helper.make_node("Mul", ["y", "s"], ["z"]),
                                helper.make_node("Tanh", ["z"], ["o"])], ["s"]),
    "none": lambda: ([helper.make_node("Identity", ["y"], ["o"])], []),
}


@pytest.mark.parametrize("m,k,n,epi", [(200, 800, 50, "bias_clip"), (97, 400, 64, "residual_relu"),
                                       (13, 1000, 35, "row_scale_tanh"), (90, 385, 16, "none"),
                                       (2800, 8, 20, "bias_clip")])
def test_blocked_matmul(compile_and_load, m, k, n, epi):
    """Several row blocks (more than tasks, at M=2800), K blocks (partial sums in the
    output) and a ragged last panel, with epilogues that run on vectors (bias, clip,
    residual, relu) and one that falls back to the scalar loop (tanh)."""
    model, feed = _blocked_model(m, k, n, epi)
    _check(compile_and_load, model, feed, threads=2)


def _blocked_model(m: int, k: int, n: int, epi: str):
    rng = np.random.default_rng(m + k + n)
    nodes, extra = EPILOGUES[epi]()
    inits = [numpy_helper.from_array(_f32(rng, k, n), "W"),
             numpy_helper.from_array(_f32(rng, n), "b"),
             numpy_helper.from_array(np.float32(-0.5), "lo"),
             numpy_helper.from_array(np.float32(1.5), "hi"),
             numpy_helper.from_array(_f32(rng, m, 1), "s")]
    used = {i for node in nodes for i in node.input} | {"W"}
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])]
    feed = {"x": _f32(rng, m, k)}
    if "r" in extra:
        inputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [m, n]))
        feed["r"] = _f32(rng, m, n)
    model = _model([helper.make_node("MatMul", ["x", "W"], ["y"])] + nodes, inputs,
                   helper.make_tensor_value_info("o", TensorProto.FLOAT, [m, n]),
                   [t for t in inits if t.name in used])
    return model, feed


def test_microkernels_are_shared_functions(tmp_path):
    """Two layers with one tile shape call one static microkernel, emitted once."""
    rng = np.random.default_rng(3)
    model = _model([helper.make_node("MatMul", ["x", "W1"], ["h"]),
                    helper.make_node("MatMul", ["h", "W2"], ["o"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [12, 40])],
                   helper.make_tensor_value_info("o", TensorProto.FLOAT, [12, 40]),
                   [numpy_helper.from_array(_f32(rng, 40, 40), "W1"),
                    numpy_helper.from_array(_f32(rng, 40, 40), "W2")])
    kiln.compile(model, output=tmp_path / "m.so", keep_sources=tmp_path / "src")
    source = (tmp_path / "src" / "model.c").read_text()
    if not HAS_VECTORS:
        assert "kiln_mk_" not in source
        return
    definitions = [line for line in source.splitlines() if line.startswith("static")
                   and "kiln_mk_" in line]
    names = [line.split("void ")[1].split("(")[0] for line in definitions]
    assert names and len(names) == len(set(names))
    assert all(source.count(f"{name}(") >= 3 for name in names)   # defined once, called twice


def test_shared_call_reads_constant_strides():
    """The affine reading of a caller's index functions: constant strides give a call of the
    shared function; a stride that is not constant keeps the inline loop."""
    from kiln.codegen import kernel_ir as K
    from kiln.codegen.lower.gemm_micro import shared_call
    from kiln.compiler.dtypes import DType

    w = K.Buffer("w", DType.float32, 4096, "weight")
    col = K.Buffer("col", DType.float32, 4096, "arena")
    koff = K.Buffer("koff", K.INDEX, 64, "local")
    tile = K.Buffer("tile", DType.float32, 96, "local")
    mp, blk, s = K.Var("mp"), K.Var("blk"), K.Var("s")
    call = shared_call(8, 6, 2, 27, lambda i, k: K.Load(w, mp * 162 + k * 6 + i),
                       lambda k, v: K.VecLoad(col, blk * 432 + k * 16 + v * 8, 8), tile, 16)
    assert call is not None and call.fn.name == "kiln_mk_v8_6x2_a1_6_b16_8"
    call = shared_call(8, 6, 2, 27, lambda i, k: K.Load(w, k * 6 + i),
                       lambda k, v: K.VecLoad(col, K.Load(koff, k) + blk * 16 + v * 8, 8),
                       tile, 16)
    assert call is not None and call.fn.name == "kiln_mk_v8_6x2_a1_6_bind_8"
    assert shared_call(8, 6, 2, 27, lambda i, k: K.Load(w, k * s + i),
                       lambda k, v: K.VecLoad(col, k * 16 + v * 8, 8), tile, 16) is None


@pytest.mark.parametrize("block_bytes", [4096, 64 << 20])
def test_blocked_matmul_small_blocks(compile_and_load, tmp_path, block_bytes):
    """The schedule with small K blocks (many partial sums in the output, each panel's
    block of B a few KiB) and with all of K in one block, replayed from a schedule file:
    the same results."""
    import json

    model, feed = _blocked_model(45, 200, 70, "residual_relu")
    dumped = tmp_path / "default.jsonl"
    compile_and_load(model, name="default", dump_schedule=str(dumped))
    (line,) = [json.loads(text) for text in dumped.read_text().splitlines()]
    assert line["kernel"] == "matmul_gemm_packed"
    line["schedule"].update(block_bytes=block_bytes, min_tasks=16)
    edited = tmp_path / "edited.jsonl"
    edited.write_text(json.dumps(line) + "\n")
    (expected,) = run_onnxruntime(model, feed)
    session = compile_and_load(model, name="edited", threads=2, schedule=str(edited))
    (actual,) = session.run(feed).values()
    assert_matches(actual, expected)


def test_long_k_matmul_in_k_blocks(compile_and_load):
    """A fully connected layer as in VGG (one row, K = 25088, streamed weights prefetched):
    K in many blocks, the result as ONNX Runtime's."""
    rng = np.random.default_rng(5)
    m, k, n = 1, 25088, 96
    model = _model([helper.make_node("MatMul", ["x", "W"], ["o"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                   helper.make_tensor_value_info("o", TensorProto.FLOAT, [m, n]),
                   [numpy_helper.from_array(_f32(rng, k, n), "W")])
    _check(compile_and_load, model, {"x": _f32(rng, m, k)}, threads=2)
