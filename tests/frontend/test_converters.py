"""Converter behaviour beyond single-op numerics: clear failures, folding, registry hygiene."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from kiln.compiler.errors import UnsupportedModelError
from kiln.compiler.interpret import run_graph
from kiln.frontends.onnx import import_model
from kiln.frontends.onnx.registry import CONVERTERS

from op_cases import make_case, rand


def _problem(case, dims=None):
    with pytest.raises(UnsupportedModelError) as info:
        import_model(case.model, dims=dims)
    (problem,) = info.value.problems
    return problem, str(info.value)


UNSUPPORTED = [
    ("Conv", 11, make_case("conv3d", "Conv", 11, {"x": rand((1, 2, 4, 4, 4))},
                           {"w": rand((3, 2, 2, 2, 2))}), "3-D convolution"),
    ("RoiAlign", 16, make_case("roi-adaptive", "RoiAlign", 16, {"x": rand((1, 2, 4, 4))},
                               {"r": np.array([[0, 0, 2, 2]], np.float32),
                                "b": np.zeros(1, np.int64)}), "sampling_ratio"),
    ("Det", 22, make_case("det-large", "Det", 22, {"x": rand((11, 11))}), "limit"),
    ("TensorScatter", 24,
     make_case("scatter-batch-axis", "TensorScatter", 24,
               {"c": rand((2, 3)), "u": rand((1, 3))}, attrs={"axis": 0}), "batch axis"),
    ("BatchNormalization", 9,
     make_case("bn-outputs", "BatchNormalization", 9, {"x": rand((2, 3, 4))},
               {"s": np.ones(3, np.float32), "b": np.zeros(3, np.float32),
                "m": np.zeros(3, np.float32), "v": np.ones(3, np.float32)}, outputs=3),
     "training outputs"),
    ("BatchNormalization", 7,
     make_case("bn-spatial", "BatchNormalization", 7, {"x": rand((2, 3, 4))},
               {"s": np.ones(3, np.float32), "b": np.zeros(3, np.float32),
                "m": np.zeros(3, np.float32), "v": np.ones(3, np.float32)},
               attrs={"spatial": 0}), "spatial=0"),
    ("Constant", 13, make_case("string", "Constant", 13, attrs={"value_string": "hi"}),
     "string constants"),
    ("GatherND", 12, make_case("gnd-batch", "GatherND", 12, {"x": rand((2, 3, 4))},
                               {"i": np.zeros((3, 1), np.int64)}, attrs={"batch_dims": 1}),
     "batch dims"),
    ("Gelu", 20, make_case("gelu-bad", "Gelu", 20, {"x": rand((3,))},
                           attrs={"approximate": "fast"}), "approximate='fast'"),
    ("Split", 13, make_case("split-uneven", "Split", 13, {"x": rand((2, 5))},
                            attrs={"axis": 1}, outputs=2), "equal parts"),
    ("Reshape", 13, make_case("reshape-dynamic", "Reshape", 13,
                              {"x": rand((2, 3)), "s": np.array([3, 2], np.int64)}),
     "must be known at compile time"),
    ("Slice", 13, make_case("slice-step0", "Slice", 13, {"x": rand((4,))},
                            {"s": np.array([0], np.int64), "e": np.array([2], np.int64),
                             "a": np.array([0], np.int64), "st": np.array([0], np.int64)}),
     "step 0"),
    ("Pad", 13, make_case("pad-mode", "Pad", 13, {"x": rand((4,))},
                          {"p": np.array([1, 1], np.int64)}, attrs={"mode": "mirror"}),
     "mode 'mirror'"),
    ("Dropout", 13, make_case("dropout-train", "Dropout", 13, {"x": rand((4,))},
                              {"r": np.array(0.5, np.float32), "t": np.array(True)}),
     "training_mode"),
    ("Cast", 13, make_case("cast-string", "Cast", 13, {"x": rand((4,))},
                           attrs={"to": onnx.TensorProto.STRING}), "STRING"),
    ("Add", 6, make_case("add-noncast", "Add", 6, {"a": rand((2, 3)), "b": rand((3,))}),
     "broadcast=0"),
]


@pytest.mark.parametrize("op, opset, case, words", UNSUPPORTED,
                         ids=[c.id for _, _, c, _ in UNSUPPORTED])
def test_unsupported_attribute_names_node_op_opset(op, opset, case, words):
    problem, message = _problem(case)
    assert problem.op_type == op
    assert problem.opset == opset
    assert problem.node == f"{op}_node"
    assert words in problem.reason
    assert f"'{op}_node' (ai.onnx::{op}, opset {opset})" in message


def test_unknown_op_is_listed_by_the_scan():
    case = make_case("mystery", "NoSuchOp", 13, {"x": rand((3,))})
    problem, _ = _problem(case)
    assert (problem.op_type, problem.opset) == ("NoSuchOp", 13)
    assert "no converter" in problem.reason


def _graph(nodes, inputs, outputs, inits=(), opset=13):
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              [numpy_helper.from_array(a, n) for n, a in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_shape_chain_folds_into_one_static_reshape():
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as exporters write it."""
    model = _graph(
        [helper.make_node("Shape", ["x"], ["s"]),
         helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
         helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
         helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
         helper.make_node("Reshape", ["x", "shape"], ["y"])],
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 3, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [("zero", np.array(0, np.int64)), ("axes", np.array([0], np.int64)),
         ("minus1", np.array([-1], np.int64))])
    graph = import_model(model, dims={"batch": 5})
    assert [n.op for n in graph.nodes] == ["reshape"]
    assert graph.nodes[0].attrs == {"shape": (5, 12)}
    x = rand((5, 3, 4))
    np.testing.assert_array_equal(run_graph(graph, {"x": x})["y"], x.reshape(5, 12))


def test_gemm_transposes_constant_b_at_compile_time():
    b = rand((5, 4), seed="b")
    case = make_case("gemm", "Gemm", 13, {"a": rand((3, 4))}, {"b": b, "c": rand((5,))},
                     attrs={"transB": 1, "alpha": 2.0})
    graph = import_model(case.model)
    assert [n.op for n in graph.nodes] == ["matmul", "add"]
    weight = graph.nodes[0].inputs[1]
    assert weight.is_constant and weight.shape == (4, 5)
    np.testing.assert_allclose(weight.data, 2.0 * b.T)


def test_batch_norm_stays_an_ir_op():
    case = make_case("bn", "BatchNormalization", 15, {"x": rand((1, 3, 4, 4))},
                     {"s": np.ones(3, np.float32), "b": np.zeros(3, np.float32),
                      "m": np.zeros(3, np.float32), "v": np.ones(3, np.float32)})
    graph = import_model(case.model)
    assert [n.op for n in graph.nodes] == ["batch_norm"]


def test_ir_attributes_are_plain_python():
    case = make_case("conv", "Conv", 11, {"x": rand((1, 2, 5, 5))}, {"w": rand((3, 2, 3, 3))},
                     attrs={"auto_pad": "SAME_UPPER", "strides": [2, 2]})
    (node,) = import_model(case.model).nodes
    assert node.attrs == {"strides": (2, 2), "pads": (1, 1, 1, 1), "dilations": (1, 1),
                          "group": 1}
    assert all(type(v) is int for v in node.attrs["pads"])


REQUIRED = """Conv Gemm MatMul Add Sub Mul Div Relu Clip Sigmoid HardSigmoid HardSwish LeakyRelu Elu
Tanh MaxPool AveragePool GlobalAveragePool GlobalMaxPool BatchNormalization Concat Flatten Reshape
Transpose Split Slice Softmax LogSoftmax ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd Shape
Gather Unsqueeze Squeeze Constant Identity Dropout LayerNormalization Erf Gelu Pow Sqrt Exp Log Neg
Abs Reciprocal Floor Ceil Where Equal Less LessOrEqual Greater GreaterOrEqual Not And Or Xor Max
Min Sum Mean Expand Cast ConstantOfShape Range Tile Pad GatherND""".split()


def test_every_required_op_has_a_converter():
    registered = {op for _, op in CONVERTERS}
    assert not set(REQUIRED) - registered


def test_converter_versions_are_real_schema_versions():
    """Each converter starts at an opset where the op's ONNX schema (re)starts."""
    for (domain, op), versions in CONVERTERS.items():
        for since, _ in versions:
            schema = _schema(op, since, domain)
            assert schema.since_version == since, f"{op} registered since {since}"


def _schema(op: str, opset: int, domain: str):
    """The schema of `op` at `opset`: onnx's, or for ONNX Runtime's com.microsoft ops (onnx
    has none) ONNX Runtime's own."""
    if domain != "com.microsoft":
        return onnx.defs.get_schema(op, opset, domain)
    from onnxruntime.capi.onnxruntime_pybind11_state import get_all_operator_schema
    found = [s for s in get_all_operator_schema()
             if s.domain == domain and s.name == op and s.since_version <= opset]
    assert found, f"ONNX Runtime has no schema of {domain}::{op} at version {opset}"
    return max(found, key=lambda s: s.since_version)


def _schema_versions(op: str, since: int, until: int, domain: str = ""):
    """The distinct schemas of `op` in opsets [since, until]."""
    seen = {}
    for opset in range(since, until + 1):
        schema = _schema(op, opset, domain)
        seen.setdefault(schema.since_version, schema)
    return list(seen.values())


def test_converters_accept_every_input_and_attribute_of_their_schemas():
    """A converter covers opsets [since, next since); each schema in that range must be
    callable with all its inputs and attributes."""
    import inspect

    from kiln.frontends.onnx.loader import MAX_KNOWN_OPSET

    Variadic = onnx.defs.OpSchema.FormalParameterOption.Variadic
    for (domain, op), versions in CONVERTERS.items():
        bounds = [s for s, _ in versions[1:]] + [MAX_KNOWN_OPSET + 1]
        for (since, fn), until in zip(versions, bounds):
            params = inspect.signature(fn).parameters.values()
            names = {p.name for p in params}
            positional = [p for p in params if p.kind == p.POSITIONAL_OR_KEYWORD][1:]
            var_positional = any(p.kind == p.VAR_POSITIONAL for p in params)
            for schema in _schema_versions(op, since, until - 1, domain):
                where = f"{op}-{schema.since_version} ({fn.__name__})"
                missing = set(schema.attributes) - names
                assert not missing, f"{where} lacks attributes {missing}"
                variadic = any(i.option == Variadic for i in schema.inputs)
                assert var_positional or (not variadic and
                                           len(positional) >= len(schema.inputs)), \
                    f"{where} takes fewer inputs than {len(schema.inputs)}"
