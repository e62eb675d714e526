"""fuse_layer_norm and fuse_gelu: the chains exporters emit become one op, the compiled
model still matches ONNX Runtime, and near misses are left alone."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from reference import assert_matches, run_onnxruntime

SHAPE = [2, 5, 8]


def _model(nodes, consts: dict, opset: int = 13, outputs=("y",)) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "pattern",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in consts.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _layer_norm(square: str = "pow", affine: bool = True, leak: bool = False):
    n = helper.make_node
    nodes = [n("ReduceMean", ["x"], ["m"], axes=[-1]), n("Sub", ["x", "m"], ["d"])]
    nodes.append(n("Pow", ["d", "two"], ["sq"]) if square == "pow" else n("Mul", ["d", "d"], ["sq"]))
    nodes += [n("ReduceMean", ["sq"], ["v"], axes=[-1]), n("Add", ["v", "eps"], ["ve"]),
              n("Sqrt", ["ve"], ["s"]), n("Div", ["d", "s"], ["nrm" if affine else "y"])]
    consts = {"two": 2.0, "eps": 1e-5}
    if affine:
        nodes += [n("Mul", ["nrm", "gamma"], ["g"]), n("Add", ["g", "beta"], ["y"])]
        rng = np.random.default_rng(1)
        consts.update(gamma=rng.standard_normal(SHAPE[-1]), beta=rng.standard_normal(SHAPE[-1]))
    outputs = ("y", "d") if leak else ("y",)
    return _model(nodes, consts, outputs=outputs)


def _gelu(form: str):
    n = helper.make_node
    inner = (n("Div", ["x", "sqrt2"], ["u"]) if form != "mul-inner"
             else n("Mul", ["x", "rsqrt2"], ["u"]))
    nodes = [inner, n("Erf", ["u"], ["e"]), n("Add", ["e", "one"], ["p"])]
    if form in ("x-first", "mul-inner"):
        nodes += [n("Mul", ["x", "p"], ["q"]), n("Mul", ["q", "half"], ["y"])]
    elif form == "half-first":
        nodes += [n("Mul", ["p", "half"], ["q"]), n("Mul", ["x", "q"], ["y"])]
    else:   # "x-half": (x * 0.5) * (1 + erf)
        nodes += [n("Mul", ["x", "half"], ["h"]), n("Mul", ["h", "p"], ["y"])]
    consts = {"sqrt2": math.sqrt(2), "rsqrt2": 1 / math.sqrt(2), "one": 1.0, "half": 0.5}
    return _model(nodes, consts)


def _ops_after_passes(model) -> dict[str, int]:
    from kiln.frontends.onnx import import_model
    from kiln.passes.manager import run_passes

    return run_passes(import_model(model), verify_each=True).op_histogram()


def _check_against_ort(model, compile_and_load):
    x = np.random.default_rng(4).standard_normal(SHAPE).astype(np.float32) * 2
    expected = run_onnxruntime(model, {"x": x})
    actual = compile_and_load(model).run({"x": x})
    for value, want in zip(actual.values(), expected):
        assert_matches(value, want)


@pytest.mark.parametrize("square", ["pow", "mul"])
@pytest.mark.parametrize("affine", [True, False])
def test_decomposed_layer_norm_becomes_one_op(square, affine, compile_and_load):
    model = _layer_norm(square, affine)
    assert _ops_after_passes(model) == {"layer_norm": 1}
    _check_against_ort(model, compile_and_load)


def test_layer_norm_with_a_shared_intermediate_is_left_alone(compile_and_load):
    model = _layer_norm(leak=True)
    assert "layer_norm" not in _ops_after_passes(model)
    _check_against_ort(model, compile_and_load)


@pytest.mark.parametrize("form", ["x-first", "half-first", "x-half", "mul-inner"])
def test_gelu_chain_becomes_one_op(form, compile_and_load):
    model = _gelu(form)
    assert _ops_after_passes(model) == {"gelu": 1}
    _check_against_ort(model, compile_and_load)


@pytest.mark.parametrize("cube", ["pow", "mul"])
def test_tanh_gelu_chain_becomes_one_op(cube, compile_and_load):
    n = helper.make_node
    nodes = [n("Pow", ["x", "three"], ["x3"]) if cube == "pow"
             else n("Mul", ["x", "xx"], ["x3"]),
             n("Mul", ["k1", "x3"], ["a"]), n("Add", ["a", "x"], ["b"]),
             n("Mul", ["b", "k2"], ["c"]), n("Tanh", ["c"], ["t"]), n("Add", ["one", "t"], ["d"]),
             n("Mul", ["half", "x"], ["h"]), n("Mul", ["h", "d"], ["y"])]
    if cube == "mul":
        nodes.insert(0, n("Mul", ["x", "x"], ["xx"]))
    model = _model(nodes, {"three": 3.0, "k1": 0.044715, "k2": math.sqrt(2 / math.pi),
                           "one": 1.0, "half": 0.5})
    assert _ops_after_passes(model) == {"gelu": 1}
    _check_against_ort(model, compile_and_load)


def test_erf_with_other_constants_is_not_gelu():
    n = helper.make_node
    model = _model([n("Div", ["x", "three"], ["u"]), n("Erf", ["u"], ["e"]),
                    n("Add", ["e", "one"], ["p"]), n("Mul", ["x", "p"], ["q"]),
                    n("Mul", ["q", "half"], ["y"])], {"three": 3.0, "one": 1.0, "half": 0.5})
    assert "gelu" not in _ops_after_passes(model)
