"""Fuzzing Kiln with mutated models: small valid seed models whose attributes, input shapes,
dtypes or serialized bytes hypothesis mutates. Each mutant must either compile and match ONNX
Runtime (as many outputs, each within tolerance), or fail with a KilnError that is not a C
compiler failure on generated code. A mutant Kiln compiles but ONNX Runtime refuses has no
reference and one whose outputs are all empty compares nothing: both are counted apart.

The CI run is tests/hardening/test_hardening_fuzz.py; a longer run:

    python tests/hardening/fuzz_models.py --examples 2000
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DTYPES = [TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.INT32,
          TensorProto.INT64, TensorProto.INT8, TensorProto.UINT8, TensorProto.BOOL,
          TensorProto.STRING, TensorProto.BFLOAT16, 0, 99]


def _w(name: str, shape, seed: int = 0) -> TensorProto:
    rng = np.random.default_rng(seed)
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def _model(name, nodes, inputs, output="y", inits=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def seed_models() -> list[onnx.ModelProto]:
    """Small valid models, one per op family the compiler lowers."""
    n = helper.make_node
    return [
        _model("relu", [n("Relu", ["x"], ["y"])], [("x", [2, 3])]),
        _model("add", [n("Add", ["x", "b"], ["y"])], [("x", [2, 3]), ("b", [3])]),
        _model("conv", [n("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1],
                          dilations=[1, 1], group=1), n("Relu", ["c"], ["y"])],
               [("x", [1, 2, 5, 5])], inits=[_w("w", [4, 2, 3, 3])]),
        _model("maxpool", [n("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
                             pads=[0, 0, 0, 0])], [("x", [1, 2, 6, 6])]),
        _model("avgpool", [n("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[1, 1],
                             pads=[1, 1, 1, 1], count_include_pad=0)], [("x", [1, 1, 5, 5])]),
        _model("softmax", [n("Softmax", ["x"], ["y"], axis=-1)], [("x", [3, 4])]),
        _model("matmul", [n("MatMul", ["x", "w"], ["y"])], [("x", [2, 3, 4])],
               inits=[_w("w", [4, 5])]),
        _model("gemm", [n("Gemm", ["x", "w", "b"], ["y"], alpha=0.5, beta=2.0, transA=0,
                          transB=1)], [("x", [3, 4])], inits=[_w("w", [5, 4]), _w("b", [5])]),
        _model("transpose", [n("Transpose", ["x"], ["y"], perm=[2, 0, 1])], [("x", [2, 3, 4])]),
        _model("concat", [n("Concat", ["x", "x"], ["y"], axis=1)], [("x", [2, 3])]),
        _model("reduce", [n("ReduceMean", ["x"], ["y"], axes=[1], keepdims=1)], [("x", [2, 3, 4])],
               opset=13),
        _model("reshape", [n("Reshape", ["x", "s"], ["y"])], [("x", [2, 3, 4])],
               inits=[numpy_helper.from_array(np.array([4, -1], np.int64), "s")]),
        _model("layernorm", [n("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1,
                               epsilon=1e-5)], [("x", [2, 3, 4])],
               inits=[_w("g", [4]), _w("b", [4], 1)]),
        _model("slice", [n("Slice", ["x", "st", "en", "ax", "sp"], ["y"])], [("x", [4, 6])],
               inits=[numpy_helper.from_array(np.array(v, np.int64), k) for k, v in
                      (("st", [1, 0]), ("en", [4, 6]), ("ax", [0, 1]), ("sp", [1, 2]))]),
        _model("clip_sigmoid", [n("Sigmoid", ["x"], ["s"]), n("Clip", ["s", "lo", "hi"], ["y"])],
               [("x", [5])], inits=[numpy_helper.from_array(np.array(0.2, np.float32), "lo"),
                                    numpy_helper.from_array(np.array(0.7, np.float32), "hi")]),
    ]


SEEDS = seed_models()
_ints = st.one_of(st.integers(-3, 6), st.sampled_from([0, -1, 1 << 31, -(1 << 62), 1 << 40]))


@st.composite
def attribute_value(draw, attr: onnx.AttributeProto):
    if attr.type == onnx.AttributeProto.INT:
        return draw(_ints)
    if attr.type == onnx.AttributeProto.INTS:
        return draw(st.lists(_ints, min_size=0, max_size=6))
    if attr.type == onnx.AttributeProto.FLOAT:
        return draw(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                              st.sampled_from([0.0, -1.0, 1e30])))
    return draw(st.text(max_size=8))


@st.composite
def mutated_models(draw) -> tuple[str, "onnx.ModelProto | bytes"]:
    """A seed model with one mutation; returns (a description, the model or its bytes)."""
    index = draw(st.integers(0, len(SEEDS) - 1))
    model = onnx.ModelProto()
    model.CopyFrom(SEEDS[index])
    kind = draw(st.sampled_from(["attribute", "shape", "dtype", "bytes", "opset",
                                 "initializer"]))
    what = f"{model.graph.name}/{kind}"
    graph = model.graph
    if kind == "attribute":
        node = graph.node[draw(st.integers(0, len(graph.node) - 1))]
        if node.attribute and draw(st.booleans()):
            attr = node.attribute[draw(st.integers(0, len(node.attribute) - 1))]
            value = draw(attribute_value(attr))
            node.attribute.remove(attr)
            node.attribute.append(helper.make_attribute(attr.name, value, attr_type=attr.type))
            what += f" {node.op_type}.{attr.name}={value!r}"
        elif node.attribute:
            attr = node.attribute[draw(st.integers(0, len(node.attribute) - 1))]
            node.attribute.remove(attr)
            what += f" {node.op_type} without {attr.name}"
        else:
            node.attribute.append(helper.make_attribute("axis", draw(_ints)))
            what += f" {node.op_type} with an extra axis"
    elif kind == "shape":
        value = graph.input[draw(st.integers(0, len(graph.input) - 1))]
        dims = draw(st.lists(st.integers(0, 7), min_size=0, max_size=5))
        value.type.tensor_type.shape.ClearField("dim")
        for d in dims:
            value.type.tensor_type.shape.dim.add().dim_value = d
        what += f" {value.name}{dims}"
    elif kind == "dtype":
        value = graph.input[draw(st.integers(0, len(graph.input) - 1))]
        value.type.tensor_type.elem_type = draw(st.sampled_from(DTYPES))
        if draw(st.booleans()):
            graph.output[0].type.tensor_type.elem_type = value.type.tensor_type.elem_type
        what += f" {value.name}:{value.type.tensor_type.elem_type}"
    elif kind == "opset":
        model.opset_import[0].version = draw(st.sampled_from([1, 6, 9, 11, 13, 18, 21, 22, 30]))
        what += f" {model.opset_import[0].version}"
    elif kind == "initializer" and graph.initializer:
        tensor = graph.initializer[draw(st.integers(0, len(graph.initializer) - 1))]
        array = numpy_helper.to_array(tensor)
        shape = draw(st.lists(st.integers(0, 6), min_size=0, max_size=4))
        size = int(np.prod(shape)) if shape else 1
        fill = np.resize(array.reshape(-1), size) if array.size else np.zeros(size, array.dtype)
        tensor.CopyFrom(numpy_helper.from_array(fill.reshape(shape), tensor.name))
        what += f" {tensor.name}{shape}"
    else:   # bytes: overwrite, insert or cut
        data = bytearray(model.SerializeToString())
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["overwrite", "insert", "truncate"]))
        if action == "overwrite":
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        else:
            del data[at:]
        return f"{what} {action}@{at}", bytes(data)
    return what, model


def _feed(session) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    feed = {}
    for spec in session.inputs:
        if np.issubdtype(spec.dtype, np.floating):
            feed[spec.name] = rng.standard_normal(spec.shape).astype(spec.dtype)
        elif spec.dtype == np.bool_:
            feed[spec.name] = rng.integers(0, 2, spec.shape).astype(bool)
        else:
            feed[spec.name] = rng.integers(-3, 4, spec.shape).astype(spec.dtype)
    return feed


#: The outcome of a mutant Kiln compiled but ONNX Runtime refused (to load or to run): not a
#: match, and not a clean failure either; counted apart and listed by the long run.
REFUSED = "compiled, refused by onnxruntime"
#: A mutant whose outputs match because they are all empty: nothing was compared.
EMPTY = "match, empty outputs"


def check_mutant(model: "onnx.ModelProto | bytes") -> str:
    """Compile a mutant; return 'error:<KilnError class>', 'match', EMPTY or REFUSED with ONNX
    Runtime's status code, e.g. 'compiled, refused by onnxruntime (NOT_IMPLEMENTED)'. Raises
    AssertionError for a crash, a C compiler failure, a different number of outputs than
    ONNX Runtime's or a mismatch with it."""
    import kiln
    from kiln.compiler.errors import KilnError, ToolchainError
    from kiln.runtime import load
    from reference import assert_matches, run_onnxruntime

    with tempfile.TemporaryDirectory() as folder:
        try:
            library = kiln.compile(model, output=str(Path(folder) / "m.so"))
        except ToolchainError as exc:
            raise AssertionError(f"generated C did not compile: {exc}") from None
        except KilnError as exc:
            assert str(exc), "a KilnError without a message"
            return f"error:{type(exc).__name__}"
        with load(library, threads=1) as session:
            feed = _feed(session)
            actual = session.run(feed)
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load_from_string(model)
    try:
        expected = run_onnxruntime(proto, feed)
    except Exception as exc:   # ONNX Runtime refuses a model Kiln accepted: no reference
        code = re.search(r"\[ONNXRuntimeError\] : \d+ : (\w+)", str(exc))
        return f"{REFUSED} ({code.group(1) if code else type(exc).__name__})"
    assert len(actual) == len(expected), \
        f"{len(actual)} outputs, ONNX Runtime gives {len(expected)}"
    for (name, value), want in zip(actual.items(), expected):
        assert_matches(value, np.asarray(want), what=name)
    return "match" if any(value.size for value in actual.values()) else EMPTY


def fuzz(examples: int, derandomize: bool, outcomes: collections.Counter,
         unreferenced: list[str] | None = None) -> None:
    """Run `examples` mutants through check_mutant, counting outcomes (and listing the
    mutants Kiln compiled but ONNX Runtime refused in `unreferenced`)."""
    @settings(max_examples=examples, deadline=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck), database=None)
    @given(mutated_models())
    def one(mutant):
        what, model = mutant
        try:
            outcome = check_mutant(model)
        except AssertionError as exc:
            raise AssertionError(f"mutant {what}: {exc}") from None
        outcomes[outcome] += 1
        if outcome.startswith(REFUSED) and unreferenced is not None:
            unreferenced.append(f"{what}: {outcome}")
    one()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Fuzz Kiln with mutated models.")
    parser.add_argument("--examples", type=int, default=500)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    outcomes: collections.Counter = collections.Counter()
    unreferenced: list[str] = []
    fuzz(args.examples, False, outcomes, unreferenced)
    print(f"{sum(outcomes.values())} mutants: " + ", ".join(
        f"{k} {v}" for k, v in sorted(outcomes.items())))
    for what in unreferenced:
        print(f"  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
