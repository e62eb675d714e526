"""fuse_swish: every spelling of SiLU and HardSwish becomes one op that joins the conv's
epilogue, and the compiled model still matches ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from reference import assert_matches, run_onnxruntime

n = helper.make_node


def _conv_then(activation: list[onnx.NodeProto], consts: dict, opset: int = 13,
               extra_outputs: tuple[str, ...] = ()) -> onnx.ModelProto:
    """x -> Conv (3x3, 4 -> 8 channels) -> `activation` nodes reading "c" and writing "y"."""
    rng = np.random.default_rng(7)
    inits = {"w": rng.standard_normal((8, 4, 3, 3)) / 6 * 3, "b": rng.standard_normal(8),
             **consts}
    graph = helper.make_graph(
        [n("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"), *activation],
        "swish", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4, 6, 6])],
        [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None)
         for o in ("y", *extra_outputs)],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


FORMS = {
    "silu": ([n("Sigmoid", ["c"], ["s"]), n("Mul", ["c", "s"], ["y"])], {}),
    "silu-gate-first": ([n("Sigmoid", ["c"], ["s"]), n("Mul", ["s", "c"], ["y"])], {}),
    "swish-alpha": ([n("Mul", ["c", "alpha"], ["a"]), n("Sigmoid", ["a"], ["s"]),
                     n("Mul", ["c", "s"], ["y"])], {"alpha": 1.702}),
    "silu-of-a-scaled-value": ([n("Mul", ["c", "two"], ["a"]), n("Sigmoid", ["a"], ["s"]),
                                n("Mul", ["a", "s"], ["y"])], {"two": 2.0}),
    "hard-sigmoid": ([n("HardSigmoid", ["c"], ["s"], alpha=1 / 6, beta=0.5),
                      n("Mul", ["c", "s"], ["y"])], {}),
    "relu6-then-div": ([n("Add", ["c", "three"], ["a"]), n("Clip", ["a", "zero", "six"], ["r"]),
                        n("Mul", ["c", "r"], ["m"]), n("Div", ["m", "six"], ["y"])],
                       {"three": 3.0, "zero": 0.0, "six": 6.0}),
    "relu6-sixth-first": ([n("Add", ["three", "c"], ["a"]),
                           n("Clip", ["a", "zero", "six"], ["r"]),
                           n("Mul", ["r", "sixth"], ["m"]), n("Mul", ["m", "c"], ["y"])],
                          {"three": 3.0, "zero": 0.0, "six": 6.0, "sixth": 1 / 6}),
}
FUSED = {"silu": "swish", "silu-gate-first": "swish", "swish-alpha": "swish",
         "silu-of-a-scaled-value": "swish",
         "hard-sigmoid": "hard_swish", "relu6-then-div": "hard_swish",
         "relu6-sixth-first": "hard_swish"}


def _groups(model: onnx.ModelProto) -> list[list[str]]:
    from kiln.frontends.onnx import import_model
    from kiln.passes.manager import run_passes

    graph = run_passes(import_model(model), verify_each=True)
    return [[node.op for node in group.nodes] for group in graph.groups]


def _check_against_ort(model: onnx.ModelProto, compile_and_load) -> None:
    x = np.random.default_rng(4).standard_normal((1, 4, 6, 6)).astype(np.float32) * 2
    expected = run_onnxruntime(model, {"x": x})
    actual = compile_and_load(model).run({"x": x})
    for value, want in zip(actual.values(), expected):
        assert_matches(value, want)


@pytest.mark.parametrize("form", list(FORMS))
def test_gated_activation_joins_the_conv_epilogue(form, compile_and_load):
    model = _conv_then(*FORMS[form])
    conv_groups = [g for g in _groups(model) if "conv2d" in g]
    assert len(conv_groups) == 1 and conv_groups[0][-1] == FUSED[form], conv_groups
    groups = _groups(model)
    assert not any("sigmoid" in g or ("mul" in g and "conv2d" not in g) for g in groups)
    _check_against_ort(model, compile_and_load)


def test_a_gate_of_another_tensor_is_no_swish(compile_and_load):
    model = _conv_then([n("Neg", ["c"], ["m"]), n("Sigmoid", ["m"], ["s"]),
                        n("Mul", ["c", "s"], ["y"])], {})
    assert not any("swish" in g for g in _groups(model))
    _check_against_ort(model, compile_and_load)


def test_a_gate_read_elsewhere_is_kept(compile_and_load):
    """The sigmoid's result is also a graph output: it must still be computed."""
    model = _conv_then(*FORMS["silu"], extra_outputs=("s",))
    assert any("sigmoid" in g for g in _groups(model))
    _check_against_ort(model, compile_and_load)


def test_other_hard_sigmoid_constants_are_no_hard_swish(compile_and_load):
    model = _conv_then([n("HardSigmoid", ["c"], ["s"], alpha=0.2, beta=0.5),
                        n("Mul", ["c", "s"], ["y"])], {})
    assert not any("hard_swish" in g for g in _groups(model))
    _check_against_ort(model, compile_and_load)
