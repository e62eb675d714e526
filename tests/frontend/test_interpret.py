"""compiler.interpret.run_graph: feeds are checked, outputs keyed by the model's names."""

from __future__ import annotations

import numpy as np
import pytest

from kiln.compiler.errors import InputError
from kiln.compiler.interpret import run_graph
from kiln.frontends.onnx import import_model

from op_cases import make_case, rand


@pytest.fixture
def graph():
    case = make_case("relu-add", "Add", 13, {"x": rand((2, 3))}, {"b": rand((3,), seed="b")})
    return import_model(case.model)


def test_outputs_keyed_by_model_output_names(graph):
    x = rand((2, 3))
    out = run_graph(graph, {"x": x})
    assert list(out) == ["y"]
    np.testing.assert_allclose(out["y"], x + rand((3,), seed="b"))


def test_missing_feed(graph):
    with pytest.raises(InputError, match="no value fed for input"):
        run_graph(graph, {})


def test_wrong_shape_or_dtype(graph):
    with pytest.raises(InputError, match="expects float32"):
        run_graph(graph, {"x": rand((3, 2))})
    with pytest.raises(InputError, match="expects float32"):
        run_graph(graph, {"x": rand((2, 3), np.int32)})


def test_keep_returns_intermediates():
    case = make_case("softmax", "Softmax", 11, {"x": rand((2, 3, 4))}, attrs={"axis": 1})
    graph = import_model(case.model)
    values = run_graph(graph, {"x": rand((2, 3, 4))}, keep=True)
    assert "y" in values and len(values) == len(graph.nodes)   # y is the last node's value


def test_constant_and_input_outputs_pass_through():
    case = make_case("identity", "Identity", 13, {"x": rand((4,))})
    x = rand((4,))
    np.testing.assert_array_equal(run_graph(import_model(case.model), {"x": x})["y"], x)
    const = make_case("constant", "Constant", 13, attrs={"value_ints": [1, 2]})
    assert run_graph(import_model(const.model), {})["y"].tolist() == [1, 2]
