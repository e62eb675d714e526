"""ONNX graph -> Kiln graph IR.

First scan every node and raise one UnsupportedModelError listing every op Kiln has no
converter for; then pin the inputs' symbolic dims and convert node by node. Nodes whose
inputs are all constants are folded as they are built, so the Shape/Gather/Concat chains
exporters emit become constants before the ops that need them (Reshape) are converted.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from ...compiler.dtypes import DType
from ...compiler.errors import Problem, ShapeError, UnpinnedDimError, UnsupportedModelError
from ...compiler.ir import Graph, TensorType, Value
from ...compiler.ops import evaluate, infer_types, op_def
from .loader import MAX_KNOWN_OPSET, default_opset
from .registry import lookup, normalize_domain

#: The largest tensor Kiln compiles (bytes): bigger ones are refused before anything is
#: allocated (and so that every size and index fits the generated code's 64-bit arithmetic).
MAX_TENSOR_BYTES = 1 << 36


def check_tensor_size(shape: Sequence[int], itemsize: int, what: str) -> None:
    """Raise ShapeError if a tensor of `shape` would exceed MAX_TENSOR_BYTES."""
    size = math.prod(int(d) for d in shape) * itemsize
    if size > MAX_TENSOR_BYTES:
        raise ShapeError(f"{what} would have shape {tuple(shape)}: {size} bytes, over Kiln's "
                         f"limit of {MAX_TENSOR_BYTES} bytes per tensor; check the model's "
                         f"dims (or the --dim/--shape values given)")


def dtype_label(code: int) -> str:
    """ONNX's name for an element type code, or the bare code if ONNX has none."""
    if code in onnx.TensorProto.DataType.values():
        return onnx.TensorProto.DataType.Name(code)
    return f"code {code} (not an ONNX type)"


def onnx_text(name: "str | bytes") -> str:
    """A name from the model as str: protobuf hands back bytes for a name that is not valid
    UTF-8; those bytes survive as surrogate escapes (name.encode('utf-8', 'surrogateescape')
    gives them back), which is how they reach the artifact and the loader."""
    if isinstance(name, bytes):
        return name.decode("utf-8", "surrogateescape")
    return name


class ConversionError(Exception):
    """Raised by a converter: this node cannot be converted, and why (and what to do);
    `consts` names the graph inputs that, fixed at compile time, would let it convert."""

    def __init__(self, reason: str, hint: str = "", consts: Sequence[str] = ()):
        super().__init__(reason)
        self.reason = reason
        self.hint = hint
        self.consts = tuple(consts)


class ConvertContext:
    """What a converter sees: the graph being built and the node being converted."""

    def __init__(self, graph: Graph, opsets: Mapping[str, int]):
        self.graph = graph
        self.opsets = dict(opsets)
        self.node: onnx.NodeProto | None = None
        self.env: dict[str, Value] = {}   # ONNX name -> Value in the scope being converted

    @property
    def opset(self) -> int:
        return self.opsets.get("", 1)

    @property
    def name(self) -> str:
        return onnx_text(self.node.name or self.node.op_type) if self.node else "graph"

    def fail(self, reason: str, hint: str = "",
             consts: Sequence[str] = ()) -> "NoReturn":  # noqa: F821
        raise ConversionError(reason, hint, consts)

    def const(self, data: Any, dtype: Any = None, name: str = "") -> Value:
        array = np.asarray(data, dtype=dtype)
        return self.graph.constant(array, name or f"{self.name}_const")

    def value_of(self, value: Value, what: str) -> np.ndarray:
        """The compile-time contents of `value`, or a clear error naming `what` it is."""
        if value is None:
            self.fail(f"{what} must be known at compile time, but the node does not give it",
                      "add it to the node as an initializer")
        if value.data is None:
            sources = self._inputs_behind(value)
            if not sources:   # computed inside a subgraph from what the loop carries
                self.fail(f"{what} must be known at compile time, but it is computed at run "
                          f"time", "fold it before export")
            names = ", ".join(f"'{v.name}'" for v in sources)
            self.fail(f"{what} must be known at compile time, but it is computed from the "
                      f"input{'s' if len(sources) > 1 else ''} {names}",
                      "fix the input's value at compile time with "
                      + " ".join(f"--const {v.name}=VALUE" for v in sources)
                      + " (a comma-separated list for a 1-d input), or fold it before export",
                      [v.name for v in sources])
        return value.data

    def _inputs_behind(self, value: Value) -> list[Value]:
        """The graph inputs whose values `value` is computed from (in the graph's order)."""
        seen: set[int] = set()
        stack = [value]
        while stack:
            current = stack.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            if current.producer is not None:
                stack.extend(current.producer.inputs)
        return [v for v in self.graph.inputs if id(v) in seen]

    def emit(self, op: str, inputs: Sequence[Value], num_outputs: int = 1, **attrs: Any):
        """Add IR op `op`, or fold it now when its result is known at compile time."""
        inputs = list(inputs)
        try:
            types = infer_types(op, [v.type for v in inputs], attrs)
            for type_ in types:
                check_tensor_size(type_.shape, type_.dtype.itemsize, f"the result of {op}")
        except ValueError as exc:   # ShapeError, or numpy's word that shapes do not broadcast
            self.fail(f"{op}: {exc}" if not isinstance(exc, ShapeError) else str(exc))
        if all(t.numel == 0 for t in types):   # an empty result is known whatever the inputs
            results = [np.empty(t.shape, t.dtype.numpy) for t in types]
        elif (all(v.is_constant or v.type.numel == 0 for v in inputs)
              and op_def(op).folds_at_import) \
                or op_def(op).kind == "shape":   # an empty input is known too: it has no data
            arrays = [v.data if v.is_constant else np.empty(v.shape, v.dtype.numpy)
                      for v in inputs]
            try:
                with np.errstate(all="ignore"):   # IEEE results (log 0 = -inf), as kernels give
                    results = evaluate(op, arrays, attrs)
            except ValueError as exc:   # e.g. the argmax of an empty set
                self.fail(f"{op} cannot be computed on inputs of shapes "
                          f"{[tuple(a.shape) for a in arrays]}: {exc}",
                          "check the model's dims (or the --dim/--shape values given)")
        else:
            node = self.graph.add_node(op, inputs, types, attrs, name=self.name)
            return node.outputs[0] if num_outputs == 1 else node.outputs
        folded = [self.graph.constant(a, f"{self.name}_{op}") for a in results]
        return folded[0] if num_outputs == 1 else folded


#: Attributes ONNX defines as 0/1 flags on every op that has them; other values are refused
#: (runtimes read them differently: `== 1` or `!= 0`).
FLAG_ATTRIBUTES = frozenset({
    "keepdims", "transA", "transB", "ceil_mode", "count_include_pad", "noop_with_empty_axes",
    "select_last_index", "exclusive", "reverse", "largest", "sorted", "allowzero",
    "detect_negative", "detect_positive", "upper", "exclude_outside", "align_corners",
    "new_axis", "onesided", "inverse", "training_mode"})


def check_attribute_names(node: onnx.NodeProto, domain: str, opset: int) -> None:
    """Refuse attributes the op's ONNX schema (at the model's opset) does not define: an
    attribute that became an input (ReduceMean's axes in opset 18) must not be misread."""
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, domain)
    except onnx.defs.SchemaError:
        return   # not an ONNX-defined op: its converter checks what it reads
    unknown = [a.name for a in node.attribute if a.name not in schema.attributes]
    if unknown:
        raise ConversionError(f"attribute(s) {', '.join(unknown)} are not defined for "
                              f"{node.op_type} in opset {opset}",
                              "remove them, or use the opset the model was written for")


def check_input_types(node: onnx.NodeProto, domain: str, opset: int,
                      inputs: Sequence[Value | None], graph_inputs: Sequence[Value]) -> None:
    """Refuse a graph input whose element type the op's ONNX schema does not allow (Relu on
    bool): the model is ill-typed, and ONNX Runtime refuses it too."""
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, domain)
    except onnx.defs.SchemaError:
        return
    if not schema.inputs:
        return
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    for index, value in enumerate(inputs):
        if value is None or not any(value is g for g in graph_inputs):
            continue
        formal = schema.inputs[min(index, len(schema.inputs) - 1)]
        types = allowed.get(formal.type_str, {formal.type_str})
        actual = f"tensor({onnx.TensorProto.DataType.Name(value.dtype.value).lower()})"
        if actual not in types:
            raise ConversionError(f"input {index} ('{value.name}') is a {actual}, but "
                                  f"{node.op_type} in opset {opset} takes "
                                  f"{', '.join(sorted(types))}",
                                  "declare the input with a type the op accepts, or Cast it")


def attribute_values(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as Python values (strings decoded, tensors as numpy arrays)."""
    values: dict[str, Any] = {}
    for attr in node.attribute:
        value = onnx.helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode("utf-8", "replace") for v in value]
        if attr.name in FLAG_ATTRIBUTES and value not in (0, 1):
            raise ConversionError(f"attribute {attr.name}={value!r} must be 0 or 1",
                                  "fix the attribute in the model")
        values[attr.name] = value
    return values


def scan(model: onnx.ModelProto) -> list[Problem]:
    """Every node Kiln has no converter for, and opsets newer than it knows."""
    opsets = {normalize_domain(o.domain): o.version for o in model.opset_import}
    problems: list[Problem] = []
    if opsets.get("", 1) > MAX_KNOWN_OPSET:
        problems.append(Problem("<model>", "-", "", opsets[""],
                                f"opset {opsets['']} is newer than Kiln knows "
                                f"({MAX_KNOWN_OPSET})",
                                f"export the model with opset {MAX_KNOWN_OPSET} or older"))
    for index, node in enumerate(model.graph.node):
        domain = normalize_domain(node.domain)
        opset = opsets.get(domain)
        name = node.name or f"#{index}"
        if opset is None:
            problems.append(Problem(name, node.op_type, domain, 0,
                                    f"domain '{domain}' is not imported by the model",
                                    "add it to the model's opset_import"))
        elif lookup(domain, node.op_type, opset) is None:
            problems.append(Problem(name, node.op_type, domain, opset,
                                    "Kiln has no converter for this op",
                                    "replace it with supported ops or file an issue"))
    return problems


def pin_input_shapes(model: onnx.ModelProto, dims: Mapping[str, int] | None,
                     shapes: Mapping[str, Sequence[int]] | None,
                     skip: Sequence[str] = ()) -> dict[str, TensorType]:
    """The static type of every real graph input, with symbolic dims filled in.

    Raises UnpinnedDimError naming every input dim that has no value.
    """
    dims = dict(dims or {})
    shapes = {k: tuple(int(d) for d in v) for k, v in (shapes or {}).items()}
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers and i.name not in skip]
    known = {i.name for i in inputs}
    unknown = sorted(set(shapes) - known)
    if unknown:
        raise UnpinnedDimError(f"--shape names no input of the model: {', '.join(unknown)} "
                               f"(inputs: {', '.join(sorted(known))})")
    named = dim_names(model)
    unknown = sorted(set(dims) - set(named))
    if unknown:
        raise UnpinnedDimError(f"--dim names no dim of the model: {', '.join(unknown)} "
                               f"(its named dims: {', '.join(named) or 'none'}; pin an "
                               f"input's whole shape with --shape INPUT=D0xD1x...)")
    types: dict[str, TensorType] = {}
    missing = free_dim_lines([i for i in inputs if i.name not in shapes], dims)
    for graph_input in inputs:
        tensor = graph_input.type.tensor_type
        if not graph_input.type.HasField("tensor_type"):
            raise UnsupportedModelError([Problem(graph_input.name, "<input>", "", 0,
                                                 "only tensor inputs are supported")])
        try:
            dtype = DType.from_onnx(tensor.elem_type)
        except ValueError:
            raise UnsupportedModelError([Problem(
                graph_input.name, "<input>", "", 0,
                f"input dtype {dtype_label(tensor.elem_type)} is not supported",
                "Kiln compiles float, integer and bool inputs")]) from None
        declared = list(tensor.shape.dim)
        if graph_input.name in shapes:
            shape = shapes[graph_input.name]
            if len(shape) != len(declared):
                raise ShapeError(f"--shape {graph_input.name} has rank {len(shape)}, but the "
                                 f"model declares rank {len(declared)}")
            for axis, (given, dim) in enumerate(zip(shape, declared)):
                if dim.HasField("dim_value") and 0 <= dim.dim_value != given:
                    raise ShapeError(f"--shape {graph_input.name}: dim {axis} is fixed to "
                                     f"{dim.dim_value} by the model, not {given}")
        else:
            shape = tuple(pinned_dim(dim, dims) for dim in declared)
            if None in shape:   # in `missing`
                continue
        if any(d < 0 for d in shape):
            raise ShapeError(f"input '{graph_input.name}' has a negative dim {shape}")
        check_tensor_size(shape, dtype.itemsize, f"input '{graph_input.name}'")
        types[graph_input.name] = TensorType(dtype, tuple(shape))
    if missing:
        raise UnpinnedDimError("the model has symbolic dims with no value:\n  - "
                               + "\n  - ".join(missing))
    return types


def dim_names(model: onnx.ModelProto) -> list[str]:
    """The symbolic dim names of the model's real inputs (what --dim can pin), sorted."""
    initializers = {t.name for t in model.graph.initializer}
    return sorted({d.dim_param for i in model.graph.input if i.name not in initializers
                   for d in i.type.tensor_type.shape.dim if d.dim_param})


def pinned_dim(dim: onnx.TensorShapeProto.Dimension, dims: Mapping[str, int]) -> int | None:
    """A declared dim's size: fixed in the model (-1 means dynamic), or pinned by --dim."""
    if dim.HasField("dim_value") and dim.dim_value >= 0:
        return dim.dim_value
    if dim.dim_param and dim.dim_param in dims:
        return int(dims[dim.dim_param])
    return None


def free_dim_lines(inputs: Sequence[onnx.ValueInfoProto], dims: Mapping[str, int]
                   ) -> list[str]:
    """What to do about the `inputs`' dims that neither the model nor `dims` gives a value:
    a line with --dim for each named one (wherever it appears); a line with --shape for each
    input with others, since a dim that is unnamed (or named '?', which exporters write for
    "unknown" on several dims) can differ from its neighbours."""
    named: dict[str, list[str]] = {}
    lines = []
    for graph_input in inputs:
        name = graph_input.name
        declared = list(graph_input.type.tensor_type.shape.dim)
        shape = [pinned_dim(dim, dims) for dim in declared]
        anonymous = []
        for axis, (dim, size) in enumerate(zip(declared, shape)):
            if size is not None:
                continue
            if dim.dim_param and dim.dim_param != "?":
                named.setdefault(dim.dim_param, []).append(f"input '{name}' dim {axis}")
            else:
                anonymous.append(f"{axis} (named '?', as exporters mark an unknown dim)"
                                 if dim.dim_param else f"{axis} (unnamed)")
        if anonymous:
            template = "x".join(str(size) if size is not None else f"D{axis}"
                                for axis, size in enumerate(shape))
            lines.append(f"input '{name}' dim{'s' if len(anonymous) > 1 else ''} "
                         f"{', '.join(anonymous)} {'have' if len(anonymous) > 1 else 'has'} "
                         f"no value (pin the input's shape with --shape {name}={template})")
    return [f"'{dim}' ({', '.join(uses)}) has no value (pin it with --dim {dim}=SIZE)"
            for dim, uses in named.items()] + lines


def import_model(model: onnx.ModelProto, dims: Mapping[str, int] | None = None,
                 shapes: Mapping[str, Sequence[int]] | None = None,
                 consts: Mapping[str, Any] | None = None) -> Graph:
    """Convert a loaded ONNX model into a graph IR with static shapes.

    consts: inputs whose value is fixed at compile time (they leave the artifact's inputs).
    """
    from .pinned import pinned_inputs
    from . import converters  # noqa: F401  (populates the registry)

    problems = scan(model)
    if problems:
        raise UnsupportedModelError(problems)
    if not model.graph.output:
        raise UnsupportedModelError([Problem("<graph>", "-", "", default_opset(model),
                                             "the graph has no outputs, so there is nothing "
                                             "to compute", "declare the graph's outputs")])
    pinned = pinned_inputs(model, consts)
    input_types = pin_input_shapes(model, dims, shapes, skip=tuple(pinned))
    opsets = {normalize_domain(o.domain): o.version for o in model.opset_import}
    graph = Graph(onnx_text(model.graph.name) or "model")
    graph.metadata["opset"] = default_opset(model)
    ctx = ConvertContext(graph, opsets)
    env: dict[str, Value] = {}
    for tensor in model.graph.initializer:
        try:
            env[tensor.name] = graph.constant(numpy_helper.to_array(tensor),
                                              onnx_text(tensor.name))
        except (ValueError, KeyError, TypeError) as exc:
            raise UnsupportedModelError([Problem(tensor.name, "<initializer>", "", 0,
                                                 f"cannot read this initializer: {exc}")]) \
                from None
    for name, array in pinned.items():
        env[name] = graph.constant(array, name)
    for name, type_ in input_types.items():
        env[name] = graph.add_input(onnx_text(name), type_)
    convert_nodes(ctx, model.graph.node, env)
    for output in model.graph.output:
        if output.name not in env:
            raise UnsupportedModelError([Problem(output.name, "<output>", "", ctx.opset,
                                                 "graph output is never produced")])
        value = env[output.name]
        declared = output.type.tensor_type.elem_type if output.type.HasField("tensor_type") \
            else 0
        if declared and declared != value.type.dtype.value:
            raise UnsupportedModelError([Problem(
                output.name, "<output>", "", ctx.opset,
                f"the graph output is declared {dtype_label(declared)} but the graph computes "
                f"{dtype_label(value.type.dtype.value)} (an invalid model)",
                "declare the output's real element type, or add a Cast")])
        graph.outputs.append(value)
    graph.metadata["output_names"] = [onnx_text(o.name) for o in model.graph.output]
    return graph


def convert_nodes(ctx: ConvertContext, nodes: Sequence[onnx.NodeProto],
                  env: dict[str, Value]) -> None:
    """Convert `nodes` in order, binding each ONNX output name in `env`."""
    ctx.env = env
    for node in nodes:
        domain = normalize_domain(node.domain)
        opset = ctx.opsets.get(domain, 0)
        fn = lookup(domain, node.op_type, opset)
        ctx.node = node
        try:
            inputs = []
            for name in node.input:
                if name == "":
                    inputs.append(None)
                elif name in env:
                    inputs.append(env[name])
                else:
                    ctx.fail(f"input '{name}' is used but never produced")
            while inputs and inputs[-1] is None:
                inputs.pop()
            first_new = len(ctx.graph.nodes)
            check_attribute_names(node, domain, opset)
            check_input_types(node, domain, opset, inputs, ctx.graph.inputs)
            result = fn(ctx, *inputs, **attribute_values(node))
        except ConversionError as exc:
            raise UnsupportedModelError([Problem(ctx.name, node.op_type, domain, opset,
                                                 exc.reason, exc.hint, exc.consts)]) from None
        except ShapeError as exc:
            raise UnsupportedModelError([Problem(ctx.name, node.op_type, domain, opset,
                                                 str(exc))]) from None
        except MemoryError:
            raise UnsupportedModelError([Problem(ctx.name, node.op_type, domain, opset,
                                                 "folding this node at compile time needs "
                                                 "more memory than this machine has",
                                                 "check the model's dims")]) from None
        except TypeError as exc:
            raise UnsupportedModelError([Problem(ctx.name, node.op_type, domain, opset,
                                                 f"unexpected inputs or attributes ({exc})")]) \
                from None
        results = list(result) if isinstance(result, (list, tuple)) else [result]
        for name, value in zip(node.output, results):
            if not name:
                continue
            created_here = any(value.producer is n for n in ctx.graph.nodes[first_new:])
            if created_here and value.name != onnx_text(name):
                ctx.graph.rename(value, onnx_text(name))
            env[name] = value
