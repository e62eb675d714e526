"""Channels-last (NHWC) convolution kernels and the layout pass, against ONNX Runtime.

passes/channels_last.py moves convs and the ops between them into NHWC on vector targets;
the dense kernel (conv_nhwc.py: implicit GEMM, segmented K, register epilogues) and the
depthwise kernel (conv_nhwc_depthwise.py: in-kernel borders) then run them. The models here
reach their edge cases: K cut into slices, ragged pixel tiles and channel panels, 1x1 convs
over all pixels, channel counts that are not a multiple of the vector, epilogues with and
without a vector form, operands that do not fold onto [pixels, channels], pools, concat and
reductions inside the region, values leaving the region, and the AVX2 tile shapes.
"""

from __future__ import annotations

import platform

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import kiln
from kiln.codegen.kernels import KernelSelector
from kiln.codegen.schedules import KernelTarget
from kiln.driver import compile_detailed
from kiln.frontends.onnx import import_model
from kiln.passes.manager import PIPELINE, run_passes
from reference import assert_matches, run_onnxruntime

_RNG = np.random.default_rng(11)


def _const(name: str, array: np.ndarray):
    return numpy_helper.from_array(np.asarray(array, np.float32), name)


def _model(nodes, inputs, outputs, inits, opset: int = 17):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _conv(x: str, out: str, c: int, oc: int, k: int, inits: list, stride: int = 1,
          pad: int = 0, group: int = 1, dilation: int = 1, pads=None):
    w = (_RNG.standard_normal((oc, c // group, k, k)) / np.sqrt(c // group * k * k))
    inits += [_const(out + "_w", w), _const(out + "_b", _RNG.standard_normal(oc))]
    return helper.make_node("Conv", [x, out + "_w", out + "_b"], [out], kernel_shape=[k, k],
                            strides=[stride, stride], pads=pads or [pad] * 4, group=group,
                            dilations=[dilation, dilation])


def _run(model, feed, threads: int = 1, cpu: str | None = None, tmp_path=None, name="m"):
    from kiln.runtime import load

    path = kiln.compile(model, output=str(tmp_path / f"{name}.so"), verify=True, cpu=cpu)
    with load(path, threads=threads) as session:
        return list(session.run(feed).values())


def _check(model, shapes: dict, tmp_path, threads: int = 1, cpu: str | None = None,
           name: str = "m"):
    feed = {k: _RNG.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    expected = run_onnxruntime(model, feed)
    for got, want in zip(_run(model, feed, threads, cpu, tmp_path, name), expected):
        assert_matches(got, want, what=name)


def _has_avx2() -> bool:
    if platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        return " avx2 " in open("/proc/cpuinfo").read().replace("\n", " ")
    except OSError:
        return False


# name: C, OC, H, W, k, stride, pad, epilogue
DENSE = {
    "k_sliced_7x7": (300, 40, 9, 9, 3, 1, 1, "relu"),
    "ragged_panel_tiles": (24, 40, 11, 13, 3, 1, 1, "relu"),
    "pointwise_all_pixels": (48, 96, 10, 10, 1, 1, 0, "relu6"),
    "pointwise_s2": (32, 64, 13, 13, 1, 2, 0, "none"),
    "first_conv_s2": (3, 64, 33, 31, 7, 2, 3, "relu"),
    "narrow_oc": (16, 8, 12, 12, 3, 1, 1, "relu"),
    "sigmoid_epilogue": (16, 48, 9, 9, 3, 1, 1, "sigmoid"),
    "leaky_epilogue": (16, 40, 9, 7, 3, 2, 1, "leaky"),
}


def _epilogue(kind: str, x: str, nodes: list, inits: list) -> str:
    if kind == "none":
        return x
    if kind == "relu6":
        inits += [_const("lo", 0.0), _const("hi", 6.0)]
        nodes.append(helper.make_node("Clip", [x, "lo", "hi"], ["e"]))
    else:
        op = {"relu": "Relu", "sigmoid": "Sigmoid", "leaky": "LeakyRelu"}[kind]
        nodes.append(helper.make_node(op, [x], ["e"]))
    return "e"


@pytest.mark.parametrize("name", sorted(DENSE))
def test_dense_nhwc_conv(name, tmp_path):
    c, oc, h, w, k, s, p, kind = DENSE[name]
    inits: list = []
    nodes = [_conv("x", "y", c, oc, k, inits, s, p)]
    out = _epilogue(kind, "y", nodes, inits)
    _check(_model(nodes, [("x", [1, c, h, w])], [out], inits), {"x": (1, c, h, w)}, tmp_path,
           name=name)


# name: C, H, W, k, stride, pads, dilation, epilogue
DEPTHWISE = {
    "overlapping_last_vector": (24, 9, 11, 3, 1, [1, 1, 1, 1], 1, "relu6"),
    "strided": (32, 14, 14, 3, 2, [1, 1, 1, 1], 1, "relu6"),
    "dilated": (32, 20, 20, 3, 1, [2, 2, 2, 2], 2, "relu"),
    "five_by_five_asym": (48, 10, 21, 5, 1, [2, 1, 2, 3], 1, "none"),
    "narrow_image": (16, 5, 3, 3, 2, [0, 1, 1, 0], 1, "sigmoid"),
}


@pytest.mark.parametrize("name", sorted(DEPTHWISE))
def test_depthwise_nhwc_conv(name, tmp_path):
    c, h, w, k, s, pads, d, kind = DEPTHWISE[name]
    inits: list = []
    nodes = [_conv("x", "y", c, c, k, inits, s, group=c, dilation=d, pads=pads)]
    out = _epilogue(kind, "y", nodes, inits)
    _check(_model(nodes, [("x", [1, c, h, w])], [out], inits), {"x": (1, c, h, w)}, tmp_path,
           name=name)


def _network():
    """conv -> relu -> maxpool (ceil) -> [depthwise, 1x1] -> concat -> mul by a [C,1,1]
    constant -> residual add -> avgpool -> conv -> GlobalAveragePool -> Flatten -> Gemm, and
    a softmax over channels of the concat (NCHW-only) as a second output."""
    inits: list = []
    nodes = [_conv("x", "c1", 3, 32, 3, inits, 2, 1), helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2],
                              ceil_mode=1),
             _conv("p1", "dw", 32, 32, 3, inits, 1, 1, group=32),
             _conv("p1", "pw", 32, 16, 1, inits),
             helper.make_node("Concat", ["dw", "pw"], ["cat"], axis=1),
             helper.make_node("Mul", ["cat", "scale"], ["scaled"]),
             _conv("scaled", "c2", 48, 48, 3, inits, 1, 1),
             helper.make_node("Add", ["c2", "cat"], ["res"]),
             helper.make_node("AveragePool", ["res"], ["p2"], kernel_shape=[3, 3],
                              strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
             _conv("p2", "c3", 48, 64, 3, inits, 1, 1),
             helper.make_node("GlobalAveragePool", ["c3"], ["gap"]),
             helper.make_node("Flatten", ["gap"], ["flat"]),
             helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
             helper.make_node("Softmax", ["cat"], ["probs"], axis=1)]
    inits += [_const("scale", _RNG.standard_normal((48, 1, 1))),
              _const("fc_w", _RNG.standard_normal((10, 64)) / 8), _const("fc_b", np.zeros(10))]
    return _model(nodes, [("x", [1, 3, 37, 35])], ["logits", "probs", "c3"], inits)


def test_network_in_nhwc_matches_onnxruntime(tmp_path):
    _check(_network(), {"x": (1, 3, 37, 35)}, tmp_path, name="net")


def test_network_two_threads(tmp_path):
    _check(_network(), {"x": (1, 3, 37, 35)}, tmp_path, threads=2, name="net2")


@pytest.mark.skipif(not _has_avx2(), reason="needs an x86-64 CPU with AVX2 to run the build")
def test_network_avx2_tiles(tmp_path):
    _check(_network(), {"x": (1, 3, 37, 35)}, tmp_path, cpu="haswell", name="net_avx2")


@pytest.mark.skipif(not _has_avx2(), reason="needs an x86-64 CPU with AVX2 to run the build")
@pytest.mark.parametrize("name", ["k_sliced_7x7", "ragged_panel_tiles", "first_conv_s2"])
def test_dense_nhwc_conv_avx2(name, tmp_path):
    c, oc, h, w, k, s, p, kind = DENSE[name]
    inits: list = []
    nodes = [_conv("x", "y", c, oc, k, inits, s, p)]
    out = _epilogue(kind, "y", nodes, inits)
    _check(_model(nodes, [("x", [1, c, h, w])], [out], inits), {"x": (1, c, h, w)}, tmp_path,
           cpu="haswell", name=name)


def test_batch_of_two_through_pointwise_and_depthwise(tmp_path):
    inits: list = []
    nodes = [_conv("x", "a", 16, 32, 1, inits), helper.make_node("Relu", ["a"], ["b"]),
             _conv("b", "c", 32, 32, 3, inits, 2, 1, group=32),
             _conv("c", "d", 32, 24, 3, inits, 1, 1)]
    _check(_model(nodes, [("x", [2, 16, 15, 15])], ["d"], inits), {"x": (2, 16, 15, 15)},
           tmp_path, threads=2, name="batch2")


def test_epilogue_operand_varying_along_rows_only(tmp_path):
    """An add of a [1, 1, H, 1] constant does not fold onto [pixels, channels]: the
    kernels finish such tiles element by element."""
    inits: list = [_const("rows", _RNG.standard_normal((1, 1, 9, 1)))]
    nodes = [_conv("x", "y", 8, 32, 3, inits, 1, 1), helper.make_node("Add", ["y", "rows"], ["z"]),
             _conv("z", "dw", 32, 32, 3, inits, 1, 1, group=32),
             helper.make_node("Add", ["dw", "rows"], ["out"])]
    _check(_model(nodes, [("x", [1, 8, 9, 9])], ["out"], inits), {"x": (1, 8, 9, 9)}, tmp_path,
           name="rows")


def _ir(model, vector_bits: int):
    graph = import_model(model)
    graph.metadata["kernel_choice"] = KernelSelector(KernelTarget(vector_bits, 32 << 10, 1 << 20,
                                                                  2))
    stop = [p.name for p in PIPELINE].index("fuse")
    return run_passes(graph, verify_each=True, pipeline=PIPELINE[:stop])


def test_layout_pass_transposes_only_at_the_edges():
    graph = _ir(_network(), 512)
    ops = [n.op for n in graph.nodes]
    convs = [n for n in graph.nodes if n.op == "conv2d"]
    assert convs and all(n.attrs["layout"] == "NHWC" for n in convs)
    assert all(n.attrs.get("layout") == "NHWC" for n in graph.nodes
               if n.op in ("max_pool2d", "avg_pool2d"))
    # in: the image; out: the concat for the softmax and the graph output c3; the
    # GlobalAveragePool result leaves as a reshape (only unit dims move)
    assert ops.count("transpose") == 3, ops
    softmax = next(n for n in graph.nodes if n.op == "softmax")
    assert softmax.inputs[0].producer.op == "transpose"
    assert [v.shape for v in graph.outputs][1:] == [(1, 48, 9, 9), (1, 64, 5, 5)]
    choice = graph.metadata["kernel_choice"]
    direct = [n for n in convs if choice.conv_kernel(n).kernel == "conv_nhwc_gemm"]
    assert direct and all(n.attrs["pads"] == (0, 0, 0, 0) for n in direct)  # made explicit
    assert any(n.op == "pad" for n in graph.nodes)


def test_layout_pass_leaves_scalar_targets_alone():
    graph = _ir(_network(), 0)
    assert not any(n.attrs.get("layout") == "NHWC" for n in graph.nodes)
    assert not any(n.op in ("transpose", "pad") for n in graph.nodes)


# name: C, OC, H, W, batch, epilogue -- 3x3 stride-1 convs that conv_winograd.py runs
WINOGRAD = {
    "f4_ragged_tiles": (32, 64, 26, 30, 1, "relu"),
    "f4_batch2": (48, 32, 24, 24, 2, "none"),
    "f2_ragged_tiles": (64, 64, 13, 11, 1, "relu6"),
    "f2_sigmoid": (32, 32, 10, 12, 1, "sigmoid"),
}


@pytest.mark.parametrize("name", sorted(WINOGRAD))
def test_winograd_conv(name, tmp_path):
    c, oc, h, w, batch, kind = WINOGRAD[name]
    inits: list = []
    nodes = [_conv("x", "y", c, oc, 3, inits, 1, 1)]
    out = _epilogue(kind, "y", nodes, inits)
    _check(_model(nodes, [("x", [batch, c, h, w])], [out], inits), {"x": (batch, c, h, w)},
           tmp_path, threads=2, name=name)


def test_winograd_with_residual(tmp_path):
    inits: list = []
    nodes = [_conv("x", "y", 32, 32, 3, inits, 1, 1), helper.make_node("Add", ["y", "x"], ["s"]),
             helper.make_node("Relu", ["s"], ["z"])]
    _check(_model(nodes, [("x", [1, 32, 28, 28])], ["z"], inits), {"x": (1, 32, 28, 28)},
           tmp_path, name="wres")


@pytest.mark.skipif(not _has_avx2(), reason="needs an x86-64 CPU with AVX2 to run the build")
@pytest.mark.parametrize("name", ["f4_ragged_tiles", "f2_ragged_tiles"])
def test_winograd_conv_avx2(name, tmp_path):
    c, oc, h, w, batch, kind = WINOGRAD[name]
    inits: list = []
    nodes = [_conv("x", "y", c, oc, 3, inits, 1, 1)]
    out = _epilogue(kind, "y", nodes, inits)
    _check(_model(nodes, [("x", [batch, c, h, w])], [out], inits), {"x": (batch, c, h, w)},
           tmp_path, cpu="haswell", name=name)


@pytest.mark.parametrize("m", [2, 4])
def test_winograd_transforms_compute_a_correlation(m):
    """A^T ((G g) * (B^T d)) equals the direct 3-tap correlation of d with g."""
    from kiln.codegen.lower.conv_winograd import transforms

    at, g, bt = transforms(m)
    rng = np.random.default_rng(m)
    for _ in range(5):
        taps, data = rng.standard_normal(3), rng.standard_normal(m + 2)
        direct = np.array([data[i:i + 3] @ taps for i in range(m)])
        np.testing.assert_allclose(at @ ((g @ taps) * (bt @ data)), direct, atol=1e-12)


def test_winograd_is_chosen_for_large_3x3_convs():
    graph = _ir(_model([_conv("x", "y", 64, 64, 3, inits := [], 1, 1)],
                       [("x", [1, 64, 56, 56])], ["y"], inits), 512)
    conv = next(n for n in graph.nodes if n.op == "conv2d")
    assert graph.metadata["kernel_choice"].conv_kernel(conv).kernel == "conv_nhwc_winograd"
    assert conv.attrs["pads"] == (1, 1, 1, 1)    # it reads zeros outside the image itself
    graph = _ir(_model([_conv("x", "y", 64, 64, 3, inits := [], 2, 1)],
                       [("x", [1, 64, 56, 56])], ["y"], inits), 512)
    conv = next(n for n in graph.nodes if n.op == "conv2d")
    assert graph.metadata["kernel_choice"].conv_kernel(conv).kernel == "conv_nhwc_gemm"


def test_winograd_filters_are_made_at_session_creation(tmp_path):
    """The artifact ships the 3x3 weights, not the 4x bigger transformed filters: those are
    made into the arena when a session is created, a caller's workspace too."""
    import ctypes

    from kiln.runtime.loader import Session, _Options

    inits: list = []
    model = _model([_conv("x", "y", 256, 256, 3, inits, 1, 1)], [("x", [1, 256, 24, 24])],
                   ["y"], inits)
    result = compile_detailed(model, output=str(tmp_path / "w.so"))
    path = str(result.library)
    weights = 256 * 256 * 9 * 4
    assert (tmp_path / "w.so").stat().st_size < 1.1 * weights + 2 ** 20
    parts = result.arena_parts   # what `kiln compile` reports the session's bytes are for
    assert sum(parts.values()) == result.arena_size
    assert parts["prepared"] >= 16 / 9 * weights    # the smallest Winograd tile, F(2x2, 3x3)
    assert parts["activations"] >= result.arena_lower_bound
    x = _RNG.standard_normal((1, 256, 24, 24)).astype(np.float32)
    (expected,) = run_onnxruntime(model, {"x": x})

    probe = Session(path, threads=1)
    lib, size = probe._lib, probe.workspace_size
    probe.close()
    assert size == result.arena_size
    workspace = np.full(size + 64, 0xFF, np.uint8)             # NaN everywhere at first
    start = -workspace.ctypes.data % 64
    options = _Options()
    lib["options_init"](ctypes.byref(options))
    options.num_threads = 2
    options.workspace = workspace.ctypes.data + start
    options.workspace_size = size
    handle = ctypes.c_void_p()
    assert lib["session_create"](ctypes.byref(options), ctypes.byref(handle)) == 0
    out = np.empty(expected.shape, np.float32)
    inputs = (ctypes.c_void_p * 1)(x.ctypes.data)
    outputs = (ctypes.c_void_p * 1)(out.ctypes.data)
    try:
        assert lib["session_run"](handle, inputs, outputs) == 0
    finally:
        lib["session_destroy"](handle)
    assert_matches(out, expected, what="caller's workspace")


# name: C in, C wide, H, stride, batch -- 1x1 conv + clip + depthwise conv + clip, fused
POINTWISE_DEPTHWISE = {
    "stride2_odd_rows": (16, 96, 113, 2, 1),
    "stride1": (24, 144, 56, 1, 1),
    "batch2": (16, 96, 80, 2, 2),
}


def _pointwise_depthwise(cin: int, wide: int, h: int, stride: int, batch: int):
    inits: list = [_const("lo", 0.0), _const("hi", 6.0)]
    nodes = [_conv("x", "a", cin, wide, 1, inits), helper.make_node("Clip", ["a", "lo", "hi"], ["b"]),
             _conv("b", "c", wide, wide, 3, inits, stride, 1, group=wide),
             helper.make_node("Clip", ["c", "lo", "hi"], ["d"])]
    return _model(nodes, [("x", [batch, cin, h, h])], ["d"], inits)


@pytest.mark.parametrize("name", sorted(POINTWISE_DEPTHWISE))
def test_pointwise_then_depthwise_fused(name, tmp_path, monkeypatch):
    from kiln.codegen.lower import conv_pointwise_depthwise

    # shapes small enough for CI, fused as the big tensors of large images are
    monkeypatch.setattr(conv_pointwise_depthwise, "MIN_WIDE_BYTES", 1 << 20)
    cin, wide, h, stride, batch = POINTWISE_DEPTHWISE[name]
    model = _pointwise_depthwise(cin, wide, h, stride, batch)
    graph = _ir(model, 512)
    from kiln.passes.fuse import fuse

    fuse(graph)
    assert any(sum(n.op == "conv2d" for n in g.nodes) == 2 for g in graph.groups)
    _check(model, {"x": (batch, cin, h, h)}, tmp_path, threads=2, name=name)


def test_small_wide_tensors_are_not_fused():
    from kiln.passes.fuse import fuse

    graph = _ir(_pointwise_depthwise(16, 96, 20, 1, 1), 512)   # 150 KiB: stays in cache
    fuse(graph)
    assert all(sum(n.op == "conv2d" for n in g.nodes) == 1 for g in graph.groups
               if g.anchor.op == "conv2d")
