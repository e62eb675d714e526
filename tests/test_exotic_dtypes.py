"""Storage dtypes (bfloat16, float8 x5, float8e8m0, float4e2m1, int4/uint4, int2/uint2) compiled
and run against onnx.reference: Cast/CastLike both ways (saturate on and off, NaN/Inf, ties,
subnormals), packed layouts with odd element counts, Quantize/DequantizeLinear (per axis,
blocked, float8), and clear refusals where Kiln does not go."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import kiln
from kiln.compiler.dtypes import DType, pack_array, unpack_array
from kiln.compiler.errors import UnsupportedModelError

FLOATS = [T.BFLOAT16, T.FLOAT8E4M3FN, T.FLOAT8E4M3FNUZ, T.FLOAT8E5M2, T.FLOAT8E5M2FNUZ,
          T.FLOAT8E8M0, T.FLOAT4E2M1]
PACKED_INTS = [T.INT4, T.UINT4, T.INT2, T.UINT2]
OPSET = 25


def _model(nodes, inputs, outputs, opset: int = OPSET) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "dtypes",
                              [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                              [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 11
    return model


def _reference(model, feed):
    return ReferenceEvaluator(model).run(None, feed)


def _same(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Exactly equal as the values they stand for (NaN equals NaN), same dtype and shape."""
    assert actual.dtype == expected.dtype, what
    assert actual.shape == expected.shape, what
    with np.errstate(invalid="ignore"):
        a, e = actual.astype(np.float64), expected.astype(np.float64)
    bad = ~((a == e) | (np.isnan(a) & np.isnan(e)))
    assert not bad.any(), (f"{what}: {int(bad.sum())} differ, e.g. {a[bad][:5]} vs "
                           f"expected {e[bad][:5]} for inputs at {np.argwhere(bad)[:5].ravel()}")


def _run_both(compile_and_load, model, feed, **options):
    session = compile_and_load(model, **options)
    got = session.run(feed)
    expected = _reference(model, feed)
    for out, want in zip(model.graph.output, expected):
        _same(got[out.name], want, out.name)
    return session


def _awkward_floats(count: int = 2001) -> np.ndarray:
    """Specials, signed zeros, exact ties and limits of every format, and a wide random
    spread (odd count)."""
    special = [0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 448.0, 464.0, 470.0, 480.0, 500.0,
               240.0, 248.0, 57344.0, 61440.0, 65536.0, 6.0, 7.0, 5.0, 0.25, 0.75, 1.25, 2.5,
               -2.5, 3e38, -3e38, 1e-40, -1e-40, 2.0 ** -127, 2.0 ** -10, 2.0 ** -9,
               3 * 2.0 ** -11, 2.0 ** -17, 1.5 * 2.0 ** -16, 2.0 ** 127 * 1.5, 1.00390625,
               1.01171875, 0.124, 1.1]
    rng = np.random.default_rng(0)
    spread = rng.standard_normal(count) * np.exp2(rng.integers(-20, 20, count))
    values = np.concatenate([np.array(special), -np.array(special), spread])
    return values.astype(np.float32)[:count + 2 * len(special) - 1]


@pytest.mark.slow
def test_cast_float_to_storage_floats(compile_and_load):
    """float32 -> every float storage type, saturate on and off (E8M0 in each round mode)."""
    nodes, outputs = [], []
    for to in FLOATS:
        for saturate in (1, 0):
            modes = ("up", "down", "nearest") if to == T.FLOAT8E8M0 else ("up",)
            for mode in modes:
                name = f"y_{T.DataType.Name(to)}_{saturate}_{mode}"
                nodes.append(helper.make_node("Cast", ["x"], [name], to=to, saturate=saturate,
                                              round_mode=mode))
                outputs.append((name, to, None))
    x = _awkward_floats()
    model = _model(nodes, [("x", T.FLOAT, list(x.shape))], outputs)
    _run_both(compile_and_load, model, {"x": x})


@pytest.mark.slow
def test_cast_storage_floats_to_float(compile_and_load):
    """Every code of each float storage type (all 65536 for bfloat16) -> float32, float16
    and int32, through Cast and CastLike."""
    nodes, inputs, outputs, feed = [], [], [], {}
    like16 = helper.make_tensor("like16", T.FLOAT16, [1], [0.0])
    for source in FLOATS:
        dtype = DType.from_onnx(source)
        codes = np.arange(1 << dtype.bits, dtype=np.uint32).astype(
            np.uint16 if dtype.bits == 16 else np.uint8)
        name = f"x_{dtype.name}"
        feed[name] = codes.view(dtype.numpy) if dtype.bits >= 8 else \
            unpack_array(pack_array(codes.view(np.uint8).view(dtype.numpy), dtype), dtype,
                         codes.shape)
        inputs.append((name, source, [codes.size]))
        for target in (T.FLOAT, T.INT32):
            out = f"{name}_to_{T.DataType.Name(target)}"
            if target == T.INT32 and dtype is not DType.float4e2m1:
                continue   # float -> int of NaN/Inf/huge values is undefined
            nodes.append(helper.make_node("Cast", [name], [out], to=target))
            outputs.append((out, target, None))
        if dtype is not DType.bfloat16:   # bfloat16 -> float16 overflows: tested as float
            out = f"{name}_like16"
            nodes.append(helper.make_node("CastLike", [name, "like16"], [out]))
            outputs.append((out, T.FLOAT16, None))
    model = _model(nodes, inputs, outputs)
    model.graph.initializer.append(like16)
    _run_both(compile_and_load, model, feed)


@pytest.mark.parametrize("count", [1, 7, 12, 9999])
def test_packed_integers_round_trip(compile_and_load, count):
    """float -> int4/uint4/int2/uint2 -> int8/uint8 and float, and int16 -> each (wrapping),
    odd counts; the largest count spans several threads' tasks. Floats are cast from inside
    each type's range: ONNX leaves out-of-range float casts undefined (ml_dtypes 0.7 makes
    them 0, earlier releases wrapped)."""
    rng = np.random.default_rng(count)
    nodes, inputs, outputs, feed = [], [], [], {}
    for to in PACKED_INTS:
        short = T.DataType.Name(to).lower()
        wide = T.INT8 if short.startswith("int") else T.UINT8
        bits = 4 if "4" in short else 2
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if wide == T.INT8 else (0, 2 ** bits)
        nodes += [helper.make_node("Cast", [f"x_{short}"], [f"p_{short}"], to=to),
                  helper.make_node("Cast", [f"p_{short}"], [f"w_{short}"], to=wide),
                  helper.make_node("Cast", [f"p_{short}"], [f"f_{short}"], to=T.FLOAT),
                  helper.make_node("Cast", ["i"], [f"q_{short}"], to=to)]
        outputs += [(f"p_{short}", to, None), (f"w_{short}", wide, None),
                    (f"f_{short}", T.FLOAT, None), (f"q_{short}", to, None)]
        inputs.append((f"x_{short}", T.FLOAT, [count]))
        feed[f"x_{short}"] = rng.uniform(lo, hi, count).astype(np.float32)
    nodes.append(helper.make_node("Cast", ["x"], ["f4"], to=T.FLOAT4E2M1))
    outputs.append(("f4", T.FLOAT4E2M1, None))
    x = (rng.standard_normal(count) * 12).astype(np.float32)
    x[:4] = [np.inf, -np.inf, np.nan, 3e30][:count] if count >= 4 else x[:4]
    feed["x"] = x
    feed["i"] = rng.integers(-300, 300, count).astype(np.int16)
    inputs += [("x", T.FLOAT, [count]), ("i", T.INT16, [count])]
    model = _model(nodes, inputs, outputs)
    session = _run_both(compile_and_load, model, feed, threads=2)
    packed = {t.name: t for t in session.outputs}
    assert packed["p_int4"].nbytes == math.ceil(count / 2)
    assert packed["p_uint2"].nbytes == math.ceil(count / 4)


def test_packed_inputs(compile_and_load):
    """Packed graph inputs of odd size are read from the caller's packed bytes."""
    nodes, inputs, outputs, feed = [], [], [], {}
    rng = np.random.default_rng(1)
    for source in PACKED_INTS + [T.FLOAT4E2M1]:
        dtype = DType.from_onnx(source)
        name = f"x_{dtype.name}"
        codes = rng.integers(0, 1 << dtype.bits, 11).astype(np.uint8)
        feed[name] = unpack_array(pack_array(codes.view(dtype.numpy), dtype), dtype, (11,))
        inputs.append((name, source, [11]))
        nodes.append(helper.make_node("Cast", [name], [f"{name}_f"], to=T.FLOAT))
        outputs.append((f"{name}_f", T.FLOAT, None))
    session = _run_both(compile_and_load, _model(nodes, inputs, outputs), feed)
    assert [t.nbytes for t in session.inputs] == [6, 6, 3, 3, 6]


def test_pack_array_matches_onnx_layout():
    """pack_array lays sub-byte elements out as ONNX's raw_data does (low bits first)."""
    for dtype, values in [(DType.int4, [-8, 7, -1, 3, 0]), (DType.uint4, [15, 0, 9]),
                          (DType.int2, [-2, 1, -1, 0, 1]), (DType.uint2, [3, 2, 1, 0, 3, 3]),
                          (DType.float4e2m1, [-6.0, 0.5, 3.0])]:
        array = np.array(values, np.float32).astype(dtype.numpy)
        raw = numpy_helper.from_array(array).raw_data
        assert pack_array(array, dtype).tobytes() == raw, dtype
        back = unpack_array(np.frombuffer(raw, np.uint8), dtype, array.shape)
        assert np.array_equal(back.astype(np.float32), array.astype(np.float32)), dtype


def test_quantize_dequantize_int4_per_axis_and_blocked(compile_and_load):
    """QuantizeLinear to int4 / uint2 (per axis, run-time scales) and blocked (block_size 3
    over 7 columns, a partial last block), DequantizeLinear back."""
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((4, 7)) * 6).astype(np.float32)
    scale = np.array([0.5, 1.0, 2.0, 0.25], np.float32)
    zero = np.array([1, -2, 0, 3], dtype=ml_dtypes.int4)
    block_scale = (rng.random((4, 3)) + 0.2).astype(np.float32)
    block_zero = rng.integers(0, 4, (4, 3)).astype(ml_dtypes.uint2)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=0),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"], axis=0),
        helper.make_node("QuantizeLinear", ["x", "bs", "bz"], ["bq"], axis=1, block_size=3),
        helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"], axis=1, block_size=3),
    ]
    model = _model(nodes, [("x", T.FLOAT, [4, 7]), ("s", T.FLOAT, [4]), ("z", T.INT4, [4]),
                           ("bs", T.FLOAT, [4, 3]), ("bz", T.UINT2, [4, 3])],
                   [("q", T.INT4, None), ("d", T.FLOAT, None), ("bq", T.UINT2, None),
                    ("bd", T.FLOAT, None)])
    _run_both(compile_and_load, model, {"x": x, "s": scale, "z": zero, "bs": block_scale,
                                        "bz": block_zero})


def test_quantize_float8_saturate(compile_and_load):
    """QuantizeLinear to float8 with and without saturation, DequantizeLinear of float8 with
    a float16 scale (the result is float16)."""
    x = np.array([0.0, 1.0, -3.5, 1e5, -1e5, 200.0, np.inf, np.nan, 0.1], np.float32)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["qn"], saturate=0),
        helper.make_node("QuantizeLinear", ["x", "s"], ["q5"], saturate=0,
                         output_dtype=T.FLOAT8E5M2FNUZ),
        helper.make_node("DequantizeLinear", ["q", "h"], ["d"]),
    ]
    model = _model(nodes, [("x", T.FLOAT, [9]), ("s", T.FLOAT, []),
                           ("z", T.FLOAT8E4M3FN, [1]), ("h", T.FLOAT16, [])],
                   [("q", T.FLOAT8E4M3FN, None), ("qn", T.FLOAT8E4M3FN, None),
                    ("q5", T.FLOAT8E5M2FNUZ, None), ("d", T.FLOAT16, None)])
    _run_both(compile_and_load, model, {"x": x, "s": np.float32(2.0),
                                        "z": np.zeros(1, ml_dtypes.float8_e4m3fn),
                                        "h": np.float16(0.5)})


def test_constant_storage_weights_fold(compile_and_load):
    """int4 and float8 initializers (quantized weights) fold to float32 at compile time."""
    w = np.array([[-8, 7, 3], [1, 0, -1]], dtype=ml_dtypes.int4)
    f8 = np.array([0.5, -448.0, 3.0], dtype=ml_dtypes.float8_e4m3fn)
    nodes = [helper.make_node("DequantizeLinear", ["w", "s"], ["dw"]),
             helper.make_node("Cast", ["f8"], ["f"], to=T.FLOAT),
             helper.make_node("Mul", ["dw", "x"], ["y0"]),
             helper.make_node("Add", ["y0", "f"], ["y"])]
    model = _model(nodes, [("x", T.FLOAT, [2, 3])], [("y", T.FLOAT, None)])
    model.graph.initializer.extend([numpy_helper.from_array(w, "w"),
                                    numpy_helper.from_array(f8, "f8"),
                                    numpy_helper.from_array(np.float32(0.5), "s")])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    _run_both(compile_and_load, model, {"x": x})


def test_arithmetic_on_storage_type_is_refused(tmp_path):
    """An op other than a conversion on a storage type is one clear UnsupportedModelError."""
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [("x", T.BFLOAT16, [3])],
                   [("y", T.BFLOAT16, None)])
    with pytest.raises(UnsupportedModelError, match="bfloat16 values directly"):
        kiln.compile(model, output=str(tmp_path / "m.so"))


def test_llvm_renderer_refuses_storage_types(tmp_path):
    model = _model([helper.make_node("Cast", ["x"], ["y"], to=T.FLOAT8E4M3FN)],
                   [("x", T.FLOAT, [3])], [("y", T.FLOAT8E4M3FN, None)])
    with pytest.raises(UnsupportedModelError, match="llvm renderer has no float8e4m3fn"):
        kiln.compile(model, output=str(tmp_path / "m.so"), emit="llvm")


def test_header_describes_packed_sizes(tmp_path):
    """The public header and the ABI descriptors give packed byte counts."""
    model = _model([helper.make_node("Cast", ["x"], ["y"], to=T.INT4)],
                   [("x", T.FLOAT, [5])], [("y", T.INT4, None)])
    library = kiln.compile(model, output=str(tmp_path / "m.so"))
    header = (tmp_path / "m.h").read_text()
    assert "int4 (uint8_t)  [5]  3 bytes" in header
    assert "KILN_DTYPE_INT4 = 22" in header
    with kiln.runtime.load(library) as session:
        assert session.outputs[0].nbytes == 3
        assert session.outputs[0].dtype == np.dtype(ml_dtypes.int4)
