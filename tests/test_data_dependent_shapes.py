"""Outputs of data-dependent size (NonZero, NonMaxSuppression, Unique): declared at an upper
bound, the actual dims reported by output_shape and Session.run trimming to them; checked
against ONNX Runtime."""

from __future__ import annotations

import ctypes

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import kiln
from reference import run_onnxruntime

_NP = {TensorProto.FLOAT: np.float32, TensorProto.INT64: np.int64,
       TensorProto.INT32: np.int32, TensorProto.BOOL: np.bool_}


def _model(nodes, inputs, outputs, initializers=(), opset=13) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model


def _io(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _nonzero_model(shape, elem=TensorProto.FLOAT):
    return _model([helper.make_node("NonZero", ["x"], ["y"])], [_io("x", elem, shape)],
                  [_io("y", TensorProto.INT64, None)])


def _check(session, model, feed):
    got = session.run(feed)
    want = run_onnxruntime(model, feed)
    assert list(got) == [o.name for o in model.graph.output]
    for name, expected in zip(got, want):
        assert got[name].shape == expected.shape, name
        np.testing.assert_array_equal(got[name], expected, err_msg=name)


@pytest.mark.parametrize("shape,elem", [([3, 4], TensorProto.FLOAT), ([2, 3, 5], TensorProto.BOOL),
                                        ([7], TensorProto.INT32)])
def test_nonzero_matches_onnxruntime(compile_and_load, shape, elem):
    model = _nonzero_model(shape, elem)
    session = compile_and_load(model)
    assert session.outputs[0].shape == (len(shape), int(np.prod(shape)))   # the bound
    rng = np.random.default_rng(0)
    for density in (0.0, 0.3, 1.0):   # none, some, all: the count changes between runs
        x = (rng.random(shape) < density) * rng.integers(1, 5, shape)
        _check(session, model, {"x": x.astype(_NP[elem])})


def _nms_model(center, max_output=None, iou=None, score=None, runtime_limits=False):
    names = ["boxes", "scores", "max_output", "iou", "score"]
    values = [max_output, iou, score]
    inputs = [_io("boxes", TensorProto.FLOAT, [2, 8, 4]),
              _io("scores", TensorProto.FLOAT, [2, 3, 8])]
    inits = []
    for name, value in zip(names[2:], values):
        if value is None:
            continue
        array = np.array([value], np.int64 if name == "max_output" else np.float32)
        if runtime_limits:
            inputs.append(_io(name, TensorProto.INT64 if name == "max_output"
                              else TensorProto.FLOAT, [1]))
        else:
            inits.append(onnx.numpy_helper.from_array(array, name))
    used = names[:2] + [n if v is not None else "" for n, v in zip(names[2:], values)]
    while used[-1] == "":
        used.pop()
    node = helper.make_node("NonMaxSuppression", used, ["selected"],
                            center_point_box=center)
    return _model([node], inputs, [_io("selected", TensorProto.INT64, None)], inits, opset=11)


def _boxes(rng, center):
    xy = rng.random((2, 8, 2)).astype(np.float32) * 4
    wh = rng.random((2, 8, 2)).astype(np.float32) * 3 + 0.5
    if center:
        return np.concatenate([xy + wh / 2, wh], axis=2)
    corners = np.concatenate([xy, xy + wh], axis=2)[..., [1, 0, 3, 2]]   # [y1, x1, y2, x2]
    flip = rng.random((2, 8)) < 0.3   # some boxes give their corners the other way round
    corners[flip] = corners[flip][:, [2, 3, 0, 1]]
    return corners


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("limits", [(3, 0.5, 0.2), (8, 0.1, None), (2, 0.7, 0.6),
                                    (None, None, None)])
def test_nms_matches_onnxruntime(compile_and_load, center, limits):
    model = _nms_model(center, *limits)
    session = compile_and_load(model)
    rng = np.random.default_rng(center)
    for _ in range(3):
        feed = {"boxes": _boxes(rng, center),
                "scores": rng.random((2, 3, 8)).astype(np.float32)}
        _check(session, model, feed)


def test_nms_limits_given_at_run_time(compile_and_load):
    model = _nms_model(0, 4, 0.4, 0.3, runtime_limits=True)
    session = compile_and_load(model)
    assert session.outputs[0].shape == (2 * 3 * 8, 3)   # no compile-time limit: all boxes
    rng = np.random.default_rng(7)
    for limit, iou, score in [(4, 0.4, 0.3), (1, 0.9, 0.0), (0, 0.5, 0.5), (100, 0.2, 0.1)]:
        feed = {"boxes": _boxes(rng, 0), "scores": rng.random((2, 3, 8)).astype(np.float32),
                "max_output": np.array([limit], np.int64),
                "iou": np.array([iou], np.float32), "score": np.array([score], np.float32)}
        _check(session, model, feed)


def _unique_model(shape, axis, sorted_, elem=TensorProto.FLOAT):
    attrs = {"sorted": sorted_} if axis is None else {"sorted": sorted_, "axis": axis}
    node = helper.make_node("Unique", ["x"], ["y", "indices", "inverse", "counts"], **attrs)
    outs = [_io("y", elem, None)] + [_io(n, TensorProto.INT64, None)
                                     for n in ("indices", "inverse", "counts")]
    return _model([node], [_io("x", elem, shape)], outs, opset=11)


@pytest.mark.parametrize("shape,axis", [([12], None), ([3, 4], None), ([5, 3], 0), ([2, 6], 1),
                                        ([2, 4, 3], -2)])
@pytest.mark.parametrize("sorted_", [1, 0])
def test_unique_matches_onnxruntime(compile_and_load, shape, axis, sorted_):
    model = _unique_model(shape, axis, sorted_)
    session = compile_and_load(model)
    rng = np.random.default_rng(len(shape))
    for high in (3, 100):   # many repeats, then (mostly) distinct
        x = rng.integers(0, high, shape).astype(np.float32)
        if axis is not None:   # repeat a slice so slices, not just elements, coincide
            moved = np.moveaxis(x, axis, 0)
            moved[-1] = moved[0]
        _check(session, model, {"x": x})


def test_unique_of_int64(compile_and_load):
    model = _unique_model([9], None, 1, TensorProto.INT64)
    session = compile_and_load(model)
    _check(session, model, {"x": np.array([5, -1, 5, 3, -1, 0, 9, 3, 5], np.int64)})


def test_data_dependent_result_feeding_an_op_is_refused(tmp_path):
    model = _model([helper.make_node("NonZero", ["x"], ["nz"], name="find"),
                    helper.make_node("Transpose", ["nz"], ["y"], name="flip")],
                   [_io("x", TensorProto.FLOAT, [3, 4])], [_io("y", TensorProto.INT64, None)])
    with pytest.raises(kiln.UnsupportedModelError) as error:
        kiln.compile(model, output=str(tmp_path / "m.so"))
    text = str(error.value)
    assert "data-dependent size" in text and "find" in text


class _Info(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int32), ("rank", ctypes.c_int32),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("nbytes", ctypes.c_size_t)]


def _c_api(path):
    lib = ctypes.CDLL(path)
    lib.kiln_output_info.argtypes = [ctypes.c_int32, ctypes.POINTER(_Info)]
    lib.kiln_session_create.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.kiln_session_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.kiln_output_shape.argtypes = [ctypes.c_void_p, ctypes.c_int32,
                                      ctypes.POINTER(ctypes.c_int64)]
    lib.kiln_session_destroy.argtypes = [ctypes.c_void_p]
    lib.kiln_last_error.restype = ctypes.c_char_p
    return lib


def test_c_api_reports_bound_then_actual_dims(tmp_path):
    path = kiln.compile(_nonzero_model([3, 4]), output=str(tmp_path / "nz.so"))
    lib = _c_api(path)
    info = _Info()
    assert lib.kiln_output_info(0, ctypes.byref(info)) == 0
    assert (info.rank, info.shape[0], info.shape[1], info.nbytes) == (2, 2, 12, 2 * 12 * 8)
    session = ctypes.c_void_p()
    assert lib.kiln_session_create(None, ctypes.byref(session)) == 0
    dims = (ctypes.c_int64 * 2)()
    assert lib.kiln_output_shape(session, 0, dims) == 1   # KILN_INVALID_ARGUMENT: no run yet
    assert b"has not run yet" in lib.kiln_last_error()
    x = np.zeros((3, 4), np.float32)
    x[0, 1] = x[2, 0] = x[2, 3] = 1.0
    y = np.full(24, -7, np.int64)
    inputs = (ctypes.c_void_p * 1)(x.ctypes.data)
    outputs = (ctypes.c_void_p * 1)(y.ctypes.data)
    assert lib.kiln_session_run(session, inputs, outputs) == 0
    assert lib.kiln_output_shape(session, 0, dims) == 0
    assert list(dims) == [2, 3]
    # compact: the first 2 * 3 entries are the [2, 3] result, row-major
    np.testing.assert_array_equal(y[:6].reshape(2, 3), np.array(np.nonzero(x)))
    assert lib.kiln_output_shape(session, 1, dims) == 1   # index out of range
    assert lib.kiln_session_destroy(session) == 0


def test_static_outputs_report_their_static_shape(tmp_path):
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [_io("x", TensorProto.FLOAT, [2, 5])],
                   [_io("y", TensorProto.FLOAT, [2, 5])])
    lib = _c_api(kiln.compile(model, output=str(tmp_path / "relu.so")))
    session = ctypes.c_void_p()
    assert lib.kiln_session_create(None, ctypes.byref(session)) == 0
    dims = (ctypes.c_int64 * 2)()
    assert lib.kiln_output_shape(session, 0, dims) == 0   # static: known before any run
    assert list(dims) == [2, 5]
    assert lib.kiln_session_destroy(session) == 0


def test_bounded_outputs_with_threads(compile_and_load):
    model = _nonzero_model([4, 5])
    session = compile_and_load(model, threads=2)
    x = np.eye(4, 5, dtype=np.float32)
    _check(session, model, {"x": x})


def test_constant_inputs_fold_to_exact_shapes(compile_and_load):
    rng = np.random.default_rng(5)
    boxes = onnx.numpy_helper.from_array(_boxes(rng, 0), "boxes")
    scores = onnx.numpy_helper.from_array(rng.random((2, 3, 8)).astype(np.float32), "scores")
    limit = onnx.numpy_helper.from_array(np.array([2], np.int64), "limit")
    x = onnx.numpy_helper.from_array(np.array([0.0, 1.0, 0.0, 2.0], np.float32), "x")
    model = _model([helper.make_node("NonMaxSuppression", ["boxes", "scores", "limit"], ["kept"]),
                    helper.make_node("NonZero", ["x"], ["nz"]),
                    helper.make_node("Add", ["z", "one"], ["out"])],
                   [_io("z", TensorProto.FLOAT, [1]), _io("one", TensorProto.FLOAT, [1])],
                   [_io("kept", TensorProto.INT64, None), _io("nz", TensorProto.INT64, None),
                    _io("out", TensorProto.FLOAT, [1])], [boxes, scores, limit, x], opset=11)
    session = compile_and_load(model)
    feed = {"z": np.ones(1, np.float32), "one": np.ones(1, np.float32)}
    assert session.outputs[1].shape == (1, 2)   # folded: a static, exact shape
    _check(session, model, feed)
