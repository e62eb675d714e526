"""A corpus of malformed and unsupported ONNX models, built in code.

Each entry is a BadModel: how to make it (bytes or a ModelProto, sometimes files beside it in
a folder), and the words the KilnError it must end in has to contain."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@dataclass(frozen=True)
class BadModel:
    """One bad model: `make(folder)` writes it there and returns its path."""

    name: str
    make: Callable[[Path], Path]
    expect: tuple[str, ...] = ()          # words the error message must contain
    dims: dict = field(default_factory=dict)


def _graph(nodes, inputs, outputs, initializers=(), opset: int = 17, domains=()):
    graph = helper.make_graph(nodes, "bad", inputs, outputs, list(initializers))
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    return model


def _vi(name: str, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def relu_model(shape=(2, 3)) -> onnx.ModelProto:
    """The valid model most bad ones start from: y = Relu(x)."""
    return _graph([helper.make_node("Relu", ["x"], ["y"], name="relu0")],
                  [_vi("x", list(shape))], [_vi("y", list(shape))])


def _write(folder: Path, model_or_bytes, name: str = "model.onnx") -> Path:
    path = folder / name
    data = (model_or_bytes if isinstance(model_or_bytes, bytes)
            else model_or_bytes.SerializeToString())
    path.write_bytes(data)
    return path


def _raw_tensor(name: str, dims, data: bytes) -> TensorProto:
    """A float tensor whose raw bytes need not match its dims (make_tensor would refuse)."""
    return TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(dims), raw_data=data)


def _truncated(folder: Path) -> Path:
    data = relu_model().SerializeToString()
    return _write(folder, data[: len(data) * 2 // 3])


def _not_onnx(folder: Path) -> Path:
    return _write(folder, b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 4)


def _empty_file(folder: Path) -> Path:
    return _write(folder, b"")


def _cycle(folder: Path) -> Path:
    nodes = [helper.make_node("Add", ["x", "b"], ["a"], name="add_a"),
             helper.make_node("Relu", ["a"], ["b"], name="relu_b"),
             helper.make_node("Identity", ["b"], ["y"], name="out")]
    return _write(folder, _graph(nodes, [_vi("x", [4])], [_vi("y", [4])]))


def _undefined_input(folder: Path) -> Path:
    nodes = [helper.make_node("Add", ["x", "ghost"], ["y"], name="add_ghost")]
    return _write(folder, _graph(nodes, [_vi("x", [4])], [_vi("y", [4])]))


def _mismatched_shapes(folder: Path) -> Path:
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    w = numpy_helper.from_array(np.ones((5, 3), np.float32), "w")
    return _write(folder, _graph(nodes, [_vi("x", [2, 4])], [_vi("y", [2, 3])], [w]))


def _unknown_domain(folder: Path) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="alien", domain="com.nowhere")]
    return _write(folder, _graph(nodes, [_vi("x", [4])], [_vi("y", [4])],
                                 domains=["com.nowhere"]))


def _unimported_domain(folder: Path) -> Path:
    model = relu_model()
    model.graph.node[0].domain = "com.nowhere"
    return _write(folder, model)


def _future_opset(folder: Path) -> Path:
    model = relu_model()
    model.opset_import[0].version = 99
    return _write(folder, model)


def _zero_dim(folder: Path) -> Path:
    return _write(folder, relu_model((0, 3)))


def _huge_dim(folder: Path) -> Path:
    return _write(folder, relu_model((1 << 40, 4)))


def _huge_initializer_dims(folder: Path) -> Path:
    w = _raw_tensor("w", [1 << 20, 1 << 20], b"")
    nodes = [helper.make_node("Add", ["x", "w"], ["y"], name="add_w")]
    return _write(folder, _graph(nodes, [_vi("x", [4])], [_vi("y", [4])], [w]))


def _short_tensor_data(folder: Path) -> Path:
    w = _raw_tensor("w", [2, 3], np.ones(4, np.float32).tobytes())
    nodes = [helper.make_node("Add", ["x", "w"], ["y"], name="add_w")]
    return _write(folder, _graph(nodes, [_vi("x", [2, 3])], [_vi("y", [2, 3])], [w]))


def _short_typed_data(folder: Path) -> Path:
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 3], float_data=[1.0, 2.0])
    nodes = [helper.make_node("Add", ["x", "w"], ["y"], name="add_w")]
    return _write(folder, _graph(nodes, [_vi("x", [2, 3])], [_vi("y", [2, 3])], [w]))


def external_data_model(location: str, extra: Callable[[Path], None] | None = None):
    """A maker of a model in FOLDER/model_dir whose initializer w lives at `location`."""
    def make(folder: Path) -> Path:
        model_dir = folder / "model_dir"
        model_dir.mkdir()
        (folder / "secret.bin").write_bytes(np.ones(6, np.float32).tobytes())
        if extra is not None:
            extra(model_dir)
        w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 3])
        w.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", "24")):
            entry = w.external_data.add()
            entry.key, entry.value = key, value
        nodes = [helper.make_node("Add", ["x", "w"], ["y"], name="add_w")]
        model = _graph(nodes, [_vi("x", [2, 3])], [_vi("y", [2, 3])], [w])
        return _write(model_dir, model)
    return make


def _link_out(model_dir: Path) -> None:
    (model_dir / "link.bin").symlink_to(model_dir.parent / "secret.bin")


def _external_too_short(model_dir: Path) -> None:
    (model_dir / "short.bin").write_bytes(b"\0" * 8)


def _duplicate_outputs(folder: Path) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["t"], name="first"),
             helper.make_node("Neg", ["x"], ["t"], name="second"),
             helper.make_node("Identity", ["t"], ["y"], name="out")]
    return _write(folder, _graph(nodes, [_vi("x", [4])], [_vi("y", [4])]))


def _duplicate_inputs(folder: Path) -> Path:
    nodes = [helper.make_node("Add", ["x", "x"], ["y"], name="add")]
    return _write(folder, _graph(nodes, [_vi("x", [4]), _vi("x", [4])], [_vi("y", [4])]))


def _input_shadows_initializer_name(folder: Path) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["x"], name="self")]
    return _write(folder, _graph(nodes, [_vi("x", [4])], [_vi("x", [4])]))


def _empty_output_name(folder: Path) -> Path:
    nodes = [helper.make_node("Relu", ["x"], [""], name="anon")]
    return _write(folder, _graph(nodes, [_vi("x", [4])], [_vi("", [4])]))


def _empty_input_name(folder: Path) -> Path:
    nodes = [helper.make_node("Relu", [""], ["y"], name="anon")]
    return _write(folder, _graph(nodes, [_vi("", [4])], [_vi("y", [4])]))


def _no_outputs(folder: Path) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu0")]
    return _write(folder, _graph(nodes, [_vi("x", [4])], []))


def _bad_attribute(folder: Path) -> Path:
    nodes = [helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=7)]
    return _write(folder, _graph(nodes, [_vi("x", [2, 3])], [_vi("y", [2, 3])]))


def _unsupported_dtype(folder: Path) -> Path:
    nodes = [helper.make_node("Identity", ["x"], ["y"], name="id")]
    return _write(folder, _graph(nodes, [_vi("x", [4], TensorProto.STRING)],
                                 [_vi("y", [4], TensorProto.STRING)]))


def _wrong_arity(folder: Path) -> Path:
    nodes = [helper.make_node("Add", ["x"], ["y"], name="add1")]
    return _write(folder, _graph(nodes, [_vi("x", [4])], [_vi("y", [4])]))


def _negative_dim(folder: Path) -> Path:
    return _write(folder, relu_model((-3, 4)))


def _reshape_to_huge(folder: Path) -> Path:
    shape = numpy_helper.from_array(np.array([1 << 30, 1 << 30], np.int64), "shape")
    nodes = [helper.make_node("Expand", ["x", "shape"], ["y"], name="expand_huge")]
    return _write(folder, _graph(nodes, [_vi("x", [1, 1])], [_vi("y", None)], [shape]))


#: Every bad model; ids are the names tests are parametrized by.
BAD_MODELS: list[BadModel] = [
    BadModel("truncated_file", _truncated, ("truncated",)),
    BadModel("not_onnx", _not_onnx, ("not",)),
    BadModel("empty_file", _empty_file, ("no graph",)),
    BadModel("cycle", _cycle, ("add_a",)),
    BadModel("input_never_produced", _undefined_input, ("ghost",)),
    BadModel("mismatched_shapes", _mismatched_shapes, ("mm", "MatMul")),
    BadModel("unknown_domain", _unknown_domain, ("alien", "com.nowhere")),
    BadModel("domain_not_imported", _unimported_domain, ("com.nowhere",)),
    BadModel("opset_too_new", _future_opset, ("opset 99",)),
    BadModel("dim_2_pow_40", _huge_dim, ("x", "limit")),
    BadModel("initializer_dims_2_pow_40", _huge_initializer_dims, ("w",)),
    BadModel("tensor_data_shorter_than_dims", _short_tensor_data, ("w",)),
    BadModel("typed_data_shorter_than_dims", _short_typed_data, ("w",)),
    BadModel("external_data_parent_dir", external_data_model("../secret.bin"), ("outside",)),
    BadModel("external_data_absolute", external_data_model("/etc/passwd"), ("outside",)),
    BadModel("external_data_symlink_out", external_data_model("link.bin", _link_out),
             ("outside",)),
    BadModel("external_data_missing", external_data_model("nowhere.bin"), ("w",)),
    BadModel("external_data_too_short", external_data_model("short.bin", _external_too_short),
             ("w",)),
    BadModel("duplicate_output_names", _duplicate_outputs, ("t",)),
    BadModel("duplicate_input_names", _duplicate_inputs, ("x",)),
    BadModel("node_overwrites_input", _input_shadows_initializer_name, ("x",)),
    BadModel("empty_output_name", _empty_output_name, ("empty",)),
    BadModel("empty_input_name", _empty_input_name, ("empty",)),
    BadModel("no_outputs", _no_outputs, ("output",)),
    BadModel("attribute_out_of_range", _bad_attribute, ("sm", "Softmax")),
    BadModel("string_dtype", _unsupported_dtype, ("STRING",)),
    BadModel("missing_operand", _wrong_arity, ("add1", "Add")),
    BadModel("negative_dim", _negative_dim, ("pin",)),
    BadModel("expand_to_2_pow_60", _reshape_to_huge, ("expand_huge", "limit")),
]


def _constant_of_shape_huge(folder: Path) -> Path:
    shape = numpy_helper.from_array(np.array([1 << 20, 1 << 20, 16], np.int64), "shape")
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["c"], name="fill_huge"),
             helper.make_node("Add", ["x", "c"], ["y"], name="add")]
    return _write(folder, _graph(nodes, [_vi("x", [1])], [_vi("y", None)], [shape]))


def _dim_param_huge(folder: Path) -> Path:
    return _write(folder, relu_model(("n", 1 << 20)))


BAD_MODELS += [
    BadModel("constant_of_shape_2_pow_44", _constant_of_shape_huge, ("fill_huge", "limit")),
    BadModel("pinned_dim_2_pow_40", _dim_param_huge, ("x", "limit"), dims={"n": 1 << 20}),
]


def _ill_typed_input(folder: Path) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu_bool")]
    return _write(folder, _graph(nodes, [_vi("x", [4], TensorProto.BOOL)],
                                 [_vi("y", [4], TensorProto.BOOL)]))


def _attribute_became_input(folder: Path) -> Path:
    nodes = [helper.make_node("ReduceMean", ["x"], ["y"], name="mean_axes", axes=[1])]
    return _write(folder, _graph(nodes, [_vi("x", [2, 3])], [_vi("y", None)], opset=18))


def _flag_out_of_range(folder: Path) -> Path:
    nodes = [helper.make_node("ReduceSum", ["x"], ["y"], name="sum_flag", keepdims=-1)]
    return _write(folder, _graph(nodes, [_vi("x", [2, 3])], [_vi("y", None)]))


def _unknown_dtype_code(folder: Path) -> Path:
    return _write(folder, _graph([helper.make_node("Relu", ["x"], ["y"], name="relu0")],
                                 [_vi("x", [4], 99)], [_vi("y", [4])]))


def _broadcast_mismatch(folder: Path) -> Path:
    nodes = [helper.make_node("Add", ["x", "b"], ["y"], name="add_bc")]
    return _write(folder, _graph(nodes, [_vi("x", [2, 3]), _vi("b", [4])], [_vi("y", None)]))


BAD_MODELS += [
    BadModel("input_type_not_allowed_by_schema", _ill_typed_input, ("relu_bool", "bool")),
    BadModel("attribute_not_in_schema", _attribute_became_input, ("mean_axes", "axes")),
    BadModel("flag_attribute_out_of_range", _flag_out_of_range, ("sum_flag", "keepdims")),
    BadModel("unknown_dtype_code", _unknown_dtype_code, ("code 99",)),
    BadModel("shapes_do_not_broadcast", _broadcast_mismatch, ("add_bc", "broadcast")),
]
