"""Single-node ONNX models, as data: one OpCase per (op, opset, attribute variant).

The frontend tests import each case and run it through the IR interpreter; the same cases
can run end to end through a compiled artifact. `reference_outputs(case)` gives what a case
must produce: ONNX Runtime's outputs, or the case's own `expected` arrays where ONNX Runtime
has no kernel for the case's (old) opset. Inputs are seeded random arrays.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

INT64_MAX = np.iinfo(np.int64).max


@dataclass
class OpCase:
    id: str
    model: onnx.ModelProto
    inputs: dict[str, np.ndarray]
    #: outputs to compare against when ONNX Runtime cannot run the case (old opsets)
    expected: dict[str, np.ndarray] | None = None
    dims: dict[str, int] = field(default_factory=dict)


def reference_outputs(case: OpCase) -> dict[str, np.ndarray]:
    """What the case must produce, keyed by the model's output names."""
    if case.expected is not None:
        return case.expected
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(case.model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, case.inputs)))


# -- building single-node models ----------------------------------------------------------------

def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def rand(shape: Sequence[int], dtype=np.float32, seed: str = "x", low=None, high=None):
    """Seeded random data: normal floats (or uniform in [low, high)), ints in [-5, 5]."""
    rng = _rng(f"{seed}{tuple(shape)}{np.dtype(dtype).name}")
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        lo = 0 if dtype.kind == "u" else -5
        return rng.integers(lo if low is None else low, 6 if high is None else high,
                            size=shape).astype(dtype)
    if low is not None:
        return rng.uniform(low, high, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _value_info(name: str, array: np.ndarray) -> onnx.ValueInfoProto:
    elem = helper.np_dtype_to_tensor_dtype(array.dtype)
    return helper.make_tensor_value_info(name, elem, array.shape)


def make_case(case_id: str, op: str, opset: int, inputs: dict | None = None,
              consts: dict | None = None, attrs: dict | None = None,
              order: Sequence[str] | None = None, outputs: int | Sequence[str] = 1,
              expected: Callable | dict | None = None) -> OpCase:
    """One node `op` at `opset`. `inputs` become graph inputs, `consts` initializers; `order`
    is the node's input list ('' for an absent optional input), by default inputs then
    consts. `expected` (a dict, or a function of the inputs) replaces ONNX Runtime."""
    inputs = dict(inputs or {})
    consts = dict(consts or {})
    order = list(order) if order is not None else [*inputs, *consts]
    names = [f"y{i}" if i else "y" for i in range(outputs)] if isinstance(outputs, int) \
        else list(outputs)
    node = helper.make_node(op, order, names, name=f"{op}_node", **(attrs or {}))
    graph = helper.make_graph(
        [node], case_id.replace("/", "_"),
        [_value_info(n, a) for n, a in inputs.items()],
        [helper.make_empty_tensor_value_info(n) for n in names if n],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="kiln-op-cases")
    if callable(expected):
        result = expected(**inputs, **consts)
        expected = dict(zip([n for n in names if n], result if isinstance(result, tuple)
                            else (result,)))
    model = _with_output_types(model, inputs, consts, expected)
    return OpCase(case_id, model, inputs, expected)


def _with_output_types(model, inputs, consts, expected=None):
    """Fill the outputs' types by shape inference (or the expected output's dtype, or the
    first input's)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:   # noqa: BLE001  (old opsets without inference)
        inferred = model
    first = next(iter({**inputs, **consts}.values()), np.zeros(0, np.float32))
    for output in inferred.graph.output:
        if not output.type.tensor_type.elem_type:
            like = (expected or {}).get(output.name, first)
            output.type.tensor_type.elem_type = helper.np_dtype_to_tensor_dtype(
                np.asarray(like).dtype)
    return inferred


# -- the cases, by family -----------------------------------------------------------------------

def _binary_cases() -> list[OpCase]:
    out = []
    shapes = [((2, 3, 4), (4,)), ((2, 1, 4), (3, 1)), ((3, 4), ())]
    for op in ("Add", "Sub", "Mul", "Div"):
        for opset in (7, 13, 14):
            for i, (sa, sb) in enumerate(shapes):
                out.append(make_case(f"{op}-{opset}-bcast{i}", op, opset,
                                     {"a": rand(sa, seed=op), "b": rand(sb, seed=op + "b")}))
        out.append(make_case(f"{op}-13-int32", op, 13,
                             {"a": rand((3, 4), np.int32, op),
                              "b": rand((4,), np.int32, op + "b", low=1, high=7)}))
        out.append(make_case(f"{op}-14-int64-const", op, 14, {"a": rand((3, 4), np.int64, op)},
                             {"b": np.array([1, -2, 3, 7], np.int64)}))
        # opset 1-6: `broadcast` and `axis` attributes (ONNX Runtime has no kernel: numpy)
        fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
        a, b = rand((2, 3, 4, 5), seed=op), rand((3, 4), seed=op + "b")
        out.append(make_case(f"{op}-6-axis1", op, 6, {"a": a, "b": b},
                             attrs={"broadcast": 1, "axis": 1},
                             expected=lambda a, b, fn=fn: fn(a, b.reshape(3, 4, 1))))
        b2 = rand((4, 5), seed=op + "c")
        out.append(make_case(f"{op}-6-suffix", op, 6, {"a": a, "b": b2},
                             attrs={"broadcast": 1},
                             expected=lambda a, b, fn=fn: fn(a, b)))
        out.append(make_case(f"{op}-1-same", op, 1, {"a": a, "b": rand(a.shape, seed="s")},
                             expected=lambda a, b, fn=fn: fn(a, b)))
    base = rand((3, 4), seed="pow", low=0.5, high=2.0)
    out.append(make_case("Pow-13-float", "Pow", 13, {"a": base, "b": rand((4,), seed="e")}))
    out.append(make_case("Pow-15-int-exponent", "Pow", 15, {"a": base},
                         {"b": np.array(3, np.int64)}))
    out.append(make_case("Pow-7-scalar", "Pow", 7, {"a": base},
                         {"b": np.array(0.5, np.float32)}))
    for op, opset in (("Equal", 13), ("Equal", 19), ("Less", 13), ("Greater", 9),
                      ("LessOrEqual", 16), ("GreaterOrEqual", 12)):
        out.append(make_case(f"{op}-{opset}-int", op, opset, {"a": rand((2, 3, 4), np.int64),
                                                            "b": rand((3, 1), np.int64, "b")}))
        out.append(make_case(f"{op}-{opset}-float", op, opset,
                             {"a": rand((2, 3)), "b": np.round(rand((2, 3), seed="b"))}))
    for op in ("And", "Or", "Xor"):
        out.append(make_case(f"{op}-7", op, 7, {"a": rand((2, 3, 4), np.bool_),
                                                "b": rand((4,), np.bool_, "b")}))
    out.append(make_case("Not-1", "Not", 1, {"x": rand((3, 4), np.bool_)}))
    out.append(make_case("Where-16", "Where", 16, {"c": rand((3, 1), np.bool_),
                                                   "a": rand((3, 4)), "b": rand((4,), seed="b")}))
    out.append(make_case("Where-9-int", "Where", 9, {"c": rand((2, 3), np.bool_),
                                                     "a": rand((2, 3), np.int64)},
                         {"b": np.array(-1, np.int64)}))
    return out


def _unary_cases() -> list[OpCase]:
    out = []
    x = rand((2, 3, 4), seed="u") * 2
    positive = rand((2, 3, 4), seed="p", low=0.1, high=3.0)
    ops = {"Sqrt": positive, "Exp": x, "Log": positive, "Neg": x, "Abs": x,
           "Reciprocal": positive, "Floor": x, "Ceil": x, "Erf": x, "Sign": x, "Round": x,
           "Sin": x, "Cos": x, "Relu": x, "Sigmoid": x, "Tanh": x, "Softplus": x,
           "Softsign": x, "HardSwish": x}
    first = {"Erf": 9, "Sign": 9, "Round": 11, "Sin": 7, "Cos": 7, "HardSwish": 14}
    for op, data in ops.items():
        for opset in sorted({first.get(op, 6), 13 if op != "HardSwish" else 14}):
            out.append(make_case(f"{op}-{opset}", op, opset, {"x": data}))
    out.append(make_case("Neg-13-int", "Neg", 13, {"x": rand((5,), np.int32)}))
    out.append(make_case("Abs-13-int", "Abs", 13, {"x": rand((5,), np.int64)}))
    out.append(make_case("Relu-1-legacy", "Relu", 1, {"x": x},
                         expected=lambda x: np.maximum(x, 0)))
    return out


def _activation_cases() -> list[OpCase]:
    out = []
    x = rand((2, 3, 4, 5), seed="act") * 3
    for opset in (6, 16):
        out.append(make_case(f"LeakyRelu-{opset}", "LeakyRelu", opset, {"x": x}))
        out.append(make_case(f"LeakyRelu-{opset}-alpha", "LeakyRelu", opset, {"x": x},
                             attrs={"alpha": 0.2}))
    out.append(make_case("Elu-6", "Elu", 6, {"x": x}))
    out.append(make_case("Elu-6-alpha", "Elu", 6, {"x": x}, attrs={"alpha": 0.5}))
    out.append(make_case("Selu-6", "Selu", 6, {"x": x}))
    out.append(make_case("Selu-6-attrs", "Selu", 6, {"x": x}, attrs={"alpha": 2.0, "gamma": 3.0}))
    out.append(make_case("HardSigmoid-6", "HardSigmoid", 6, {"x": x}))
    out.append(make_case("HardSigmoid-6-attrs", "HardSigmoid", 6, {"x": x},
                         attrs={"alpha": 0.3, "beta": 0.4}))
    out.append(make_case("Gelu-20", "Gelu", 20, {"x": x}))
    out.append(make_case("Gelu-20-tanh", "Gelu", 20, {"x": x}, attrs={"approximate": "tanh"}))
    out.append(make_case("PRelu-9-channel", "PRelu", 9, {"x": x},
                         {"slope": rand((3, 1, 1), seed="slope")}))
    out.append(make_case("PRelu-16-scalar", "PRelu", 16, {"x": x},
                         {"slope": np.array([0.25], np.float32)}))
    out.append(make_case("PRelu-16-input", "PRelu", 16, {"x": x, "slope": rand((5,), seed="s")}))
    out.append(make_case("PRelu-6-per-channel", "PRelu", 6, {"x": x},
                         {"slope": rand((3,), seed="slope")},
                         expected=lambda x, slope: np.where(x < 0, x * slope.reshape(3, 1, 1),
                                                            x)))
    # Clip: attributes (opset 6), inputs (11, 13)
    out.append(make_case("Clip-6-relu6", "Clip", 6, {"x": x}, attrs={"min": 0.0, "max": 6.0}))
    out.append(make_case("Clip-6-min", "Clip", 6, {"x": x}, attrs={"min": -0.5}))
    out.append(make_case("Clip-6-open", "Clip", 6, {"x": x}))
    for opset in (11, 13):
        lo, hi = np.array(-1.0, np.float32), np.array(0.5, np.float32)
        out.append(make_case(f"Clip-{opset}-both", "Clip", opset, {"x": x},
                             {"lo": lo, "hi": hi}))
        out.append(make_case(f"Clip-{opset}-max-only", "Clip", opset, {"x": x}, {"hi": hi},
                             order=["x", "", "hi"]))
        out.append(make_case(f"Clip-{opset}-none", "Clip", opset, {"x": x}))
    out.append(make_case("Clip-13-computed-min", "Clip", 13, {"x": x, "lo": lo}, {"hi": hi}))
    out.append(make_case("Clip-13-int", "Clip", 13, {"x": rand((4, 5), np.int32)},
                         {"lo": np.array(-2, np.int32), "hi": np.array(3, np.int32)}))
    for op in ("Softmax", "LogSoftmax"):
        for opset, axis in ((1, None), (11, None), (11, 2), (11, -1), (11, 0), (13, None),
                            (13, 1), (13, -2)):
            attrs = {} if axis is None else {"axis": axis}
            out.append(make_case(f"{op}-{opset}-axis{axis}", op, opset, {"x": x}, attrs=attrs))
    return out


def _conv_cases() -> list[OpCase]:
    out = []
    x = rand((1, 4, 9, 8), seed="conv")
    w = rand((6, 4, 3, 3), seed="w")
    b = rand((6,), seed="bias")
    variants = {
        "basic": ({}, w),
        "pads": ({"pads": [1, 1, 1, 1]}, w),
        "asym-pads": ({"pads": [0, 1, 2, 1]}, w),
        "strides": ({"strides": [2, 2], "pads": [1, 1, 1, 1]}, w),
        "dilations": ({"dilations": [2, 2], "pads": [2, 2, 2, 2]}, w),
        "group2": ({"group": 2, "pads": [1, 1, 1, 1]}, rand((6, 2, 3, 3), seed="g")),
        "depthwise": ({"group": 4, "strides": [2, 1]}, rand((4, 1, 3, 3), seed="dw")),
        "rect-kernel": ({"kernel_shape": [1, 3]}, rand((6, 4, 1, 3), seed="r")),
        "pointwise": ({}, rand((6, 4, 1, 1), seed="pw")),
        "same-upper": ({"auto_pad": "SAME_UPPER", "strides": [2, 2]}, w),
        "same-lower": ({"auto_pad": "SAME_LOWER", "strides": [2, 2]}, w),
        "same-upper-even": ({"auto_pad": "SAME_UPPER"}, rand((6, 4, 2, 2), seed="e")),
        "same-lower-even": ({"auto_pad": "SAME_LOWER"}, rand((6, 4, 2, 2), seed="e")),
        "valid": ({"auto_pad": "VALID", "strides": [2, 3]}, w),
        "big-stride": ({"strides": [4, 5]}, rand((6, 4, 1, 1), seed="pw")),
    }
    for name, (attrs, weight) in variants.items():
        for opset in (11,) if name not in ("basic", "strides") else (1, 11, 22):
            out.append(make_case(f"Conv-{opset}-{name}", "Conv", opset, {"x": x},
                                 {"w": weight, "b": rand((weight.shape[0],), seed="b")},
                                 attrs=attrs))
    out.append(make_case("Conv-11-nobias", "Conv", 11, {"x": x}, {"w": w}))
    out.append(make_case("Conv-11-weight-input", "Conv", 11, {"x": x, "w": w, "b": b}))
    x1 = rand((2, 4, 11), seed="conv1d")
    w1 = rand((5, 4, 3), seed="w1")
    for name, attrs in {"1d": {}, "1d-pads-strides": {"pads": [1, 2], "strides": [2]},
                        "1d-same": {"auto_pad": "SAME_UPPER", "strides": [2]}}.items():
        out.append(make_case(f"Conv-11-{name}", "Conv", 11, {"x": x1}, {"w": w1}, attrs=attrs))
    return out


def _pool_cases() -> list[OpCase]:
    out = []
    x = rand((1, 3, 9, 10), seed="pool")
    variants = {
        "basic": {"kernel_shape": [2, 2]},
        "strided-pads": {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
        "asym": {"kernel_shape": [3, 2], "strides": [1, 2], "pads": [0, 1, 1, 0]},
        "ceil": {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
        "ceil-pads": {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                      "ceil_mode": 1},
        "same-upper": {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
        "same-lower": {"kernel_shape": [2, 2], "strides": [2, 2], "auto_pad": "SAME_LOWER"},
        "same-lower-odd": {"kernel_shape": [2, 2], "auto_pad": "SAME_LOWER"},
        "valid": {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "VALID"},
    }
    for name, attrs in variants.items():
        legacy = "ceil" not in name
        for opset in (12,) + ((8,) if legacy else ()):
            out.append(make_case(f"MaxPool-{opset}-{name}", "MaxPool", opset, {"x": x},
                                 attrs=attrs))
        for opset in (11, 19) + ((7,) if legacy else ()):
            out.append(make_case(f"AveragePool-{opset}-{name}", "AveragePool", opset,
                                 {"x": x}, attrs=attrs))
            if "pads" in attrs or "ceil" in name:
                out.append(make_case(f"AveragePool-{opset}-{name}-include-pad", "AveragePool",
                                     opset, {"x": x}, attrs={**attrs, "count_include_pad": 1}))
    out.append(make_case("MaxPool-12-dilations", "MaxPool", 12, {"x": x},
                         attrs={"kernel_shape": [2, 2], "dilations": [2, 2],
                                "pads": [1, 1, 1, 1]}))
    out.append(make_case("MaxPool-12-storage-order", "MaxPool", 12, {"x": x},
                         attrs={"kernel_shape": [2, 2], "storage_order": 1}))
    for dtype in (np.int8, np.uint8):
        out.append(make_case(f"MaxPool-12-{np.dtype(dtype).name}", "MaxPool", 12,
                             {"x": rand((1, 2, 5, 5), dtype, "pool") - (2 if dtype == np.uint8
                                                                         else 7)},
                             attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}))
    out.append(make_case("MaxPool-1-basic", "MaxPool", 1, {"x": x},
                         attrs={"kernel_shape": [2, 2], "strides": [2, 2]}))
    out.append(make_case("AveragePool-19-dilations", "AveragePool", 19, {"x": x},
                         attrs={"kernel_shape": [2, 2], "dilations": [2, 1]}))
    x1 = rand((2, 3, 11), seed="pool1d")
    out.append(make_case("MaxPool-12-1d", "MaxPool", 12, {"x": x1},
                         attrs={"kernel_shape": [3], "strides": [2], "pads": [1, 1]}))
    out.append(make_case("AveragePool-11-1d-ceil", "AveragePool", 11, {"x": x1},
                         attrs={"kernel_shape": [3], "strides": [2], "ceil_mode": 1}))
    for op in ("GlobalAveragePool", "GlobalMaxPool"):
        out.append(make_case(f"{op}-1", op, 1, {"x": x}))
        out.append(make_case(f"{op}-1-3d", op, 1, {"x": x1}))
    return out


def _matmul_cases() -> list[OpCase]:
    out = []
    shapes = {"2d": ((3, 4), (4, 5)), "batched": ((2, 3, 4), (4, 5)),
              "bcast": ((2, 1, 3, 4), (5, 4, 6)), "vec-mat": ((4,), (4, 5)),
              "mat-vec": ((3, 4), (4,)), "vec-vec": ((4,), (4,)), "vec-batch": ((4,), (2, 4, 3)),
              "batch-vec": ((2, 3, 4), (4,))}
    for name, (sa, sb) in shapes.items():
        out.append(make_case(f"MatMul-13-{name}", "MatMul", 13, {"a": rand(sa)},
                             {"b": rand(sb, seed="b")}))
    out.append(make_case("MatMul-9-inputs", "MatMul", 9, {"a": rand((2, 3, 4)),
                                                          "b": rand((2, 4, 5), seed="b")}))
    out.append(make_case("MatMul-1-int", "MatMul", 13, {"a": rand((3, 4), np.int32)},
                         {"b": rand((4, 2), np.int32, "b")}))
    m, k, n = 3, 4, 5
    for ta in (0, 1):
        for tb in (0, 1):
            a = rand((k, m) if ta else (m, k), seed="ga")
            b = rand((n, k) if tb else (k, n), seed="gb")
            out.append(make_case(f"Gemm-13-tA{ta}-tB{tb}", "Gemm", 13, {"a": a},
                                 {"b": b, "c": rand((n,), seed="gc")},
                                 attrs={"transA": ta, "transB": tb}))
    a, b = rand((m, k), seed="ga"), rand((n, k), seed="gb")
    for name, c in {"c-row": rand((1, n)), "c-full": rand((m, n)), "c-col": rand((m, 1)),
                    "c-scalar": np.array(0.5, np.float32)}.items():
        out.append(make_case(f"Gemm-11-{name}", "Gemm", 11, {"a": a}, {"b": b, "c": c},
                             attrs={"transB": 1, "alpha": 0.5, "beta": 2.0}))
    out.append(make_case("Gemm-11-no-c", "Gemm", 11, {"a": a}, {"b": b},
                         attrs={"transB": 1, "alpha": 1.5}))
    out.append(make_case("Gemm-13-beta0", "Gemm", 13, {"a": a}, {"b": b, "c": rand((n,))},
                         attrs={"transB": 1, "beta": 0.0}))
    out.append(make_case("Gemm-9-inputs", "Gemm", 9,
                         {"a": a, "b": rand((k, n), seed="gb2"), "c": rand((m, n), seed="c")},
                         attrs={"alpha": 2.0, "beta": 0.5}))
    out.append(make_case("Gemm-7-c-input", "Gemm", 7, {"a": a, "c": rand((n,), seed="c")},
                         {"b": b}, order=["a", "b", "c"], attrs={"transB": 1}))
    out.append(make_case("Gemm-6-broadcast", "Gemm", 6, {"a": a}, {"b": b, "c": rand((n,))},
                         attrs={"transB": 1, "broadcast": 1},
                         expected=lambda a, b, c: a @ b.T + c))
    return out


def _normalization_cases() -> list[OpCase]:
    out = []
    x = rand((2, 3, 4, 5), seed="bn")
    params = {"scale": rand((3,), seed="s"), "bias": rand((3,), seed="b"),
              "mean": rand((3,), seed="m"), "var": rand((3,), seed="v", low=0.5, high=2.0)}
    for opset in (7, 9, 14, 15):
        out.append(make_case(f"BatchNormalization-{opset}", "BatchNormalization", opset,
                             {"x": x}, params, attrs={"epsilon": 1e-3}))
    out.append(make_case("BatchNormalization-6-is-test", "BatchNormalization", 6, {"x": x},
                         params, attrs={"is_test": 1},
                         expected=lambda x, scale, bias, mean, var: (
                             (x - mean.reshape(3, 1, 1)) / np.sqrt(var.reshape(3, 1, 1) + 1e-5)
                             * scale.reshape(3, 1, 1) + bias.reshape(3, 1, 1))))
    out.append(make_case("BatchNormalization-15-2d", "BatchNormalization", 15,
                         {"x": rand((4, 3), seed="bn2")}, params))
    out.append(make_case("BatchNormalization-15-inputs", "BatchNormalization", 15,
                         {"x": x, **params}))
    for name, attrs, with_bias in (("default", {}, True), ("axis1", {"axis": 1}, True),
                                   ("no-bias", {"epsilon": 1e-3}, False),
                                   ("axis-2", {"axis": -2}, True)):
        axis = attrs.get("axis", -1)
        norm_shape = x.shape[axis:]
        consts = {"scale": rand(norm_shape, seed="ls")}
        if with_bias:
            consts["bias"] = rand(norm_shape, seed="lb")
        out.append(make_case(f"LayerNormalization-17-{name}", "LayerNormalization", 17,
                             {"x": x}, consts, attrs=attrs))
    out.append(make_case("InstanceNormalization-6", "InstanceNormalization", 6, {"x": x},
                         {"scale": params["scale"], "bias": params["bias"]}))
    return out


_REDUCE_INPUT_SINCE = {"ReduceSum": 13}
_REDUCE_OPS = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
               "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp")


def _reduce_cases() -> list[OpCase]:
    out = []
    x = rand((2, 3, 4), seed="red", low=0.5, high=1.5)
    for op in _REDUCE_OPS:
        new = _REDUCE_INPUT_SINCE.get(op, 18)
        old = 11 if new == 13 else 13
        for name, axes, keepdims in (("axis1", [1], 1), ("axes-neg", [-1, 0], 0),
                                     ("all", None, 1), ("all-drop", None, 0)):
            attrs = {} if keepdims == 1 else {"keepdims": 0}
            old_attrs = attrs if axes is None else {**attrs, "axes": axes}
            out.append(make_case(f"{op}-{old}-{name}", op, old, {"x": x}, attrs=old_attrs))
            consts = {} if axes is None else {"axes": np.array(axes, np.int64)}
            out.append(make_case(f"{op}-{new}-{name}", op, new, {"x": x}, consts, attrs=attrs))
        out.append(make_case(f"{op}-{new}-noop", op, new, {"x": x},
                             attrs={"noop_with_empty_axes": 1}))
    out.append(make_case("ReduceMax-18-int", "ReduceMax", 18, {"x": rand((3, 4), np.int64)},
                         {"axes": np.array([1], np.int64)}))
    return out


def _shape_cases() -> list[OpCase]:
    out = []
    x = rand((2, 3, 4, 5), seed="shape")
    out.append(make_case("Shape-13", "Shape", 13, {"x": x}))
    for start, end in ((1, None), (-3, -1), (0, 10), (-10, 2)):
        attrs = {"start": start} | ({} if end is None else {"end": end})
        out.append(make_case(f"Shape-15-{start}-{end}", "Shape", 15, {"x": x}, attrs=attrs))
    out.append(make_case("Size-13", "Size", 13, {"x": x}))
    for opset, variants in ((13, {"copy-infer": [0, 3, -1], "flat": [-1], "same": [2, 3, 4, 5]}),
                            (14, {"allowzero": [6, 0, 20]}), (5, {"infer": [-1, 10]})):
        for name, shape in variants.items():
            attrs = {"allowzero": 1} if name == "allowzero" else {}
            shape_x = rand((6, 0, 20), seed="z") if name == "allowzero" else x
            out.append(make_case(f"Reshape-{opset}-{name}", "Reshape", opset, {"x": shape_x},
                                 {"shape": np.array(shape, np.int64)}, attrs=attrs))
    out.append(make_case("Reshape-1-attribute", "Reshape", 1, {"x": x},
                         attrs={"shape": [2, 0, -1]},
                         expected=lambda x: x.reshape(2, 3, 20)))
    for opset in (9, 13):
        for axis in (0, 1, 3) + ((-1, 4) if opset == 13 else ()):
            out.append(make_case(f"Flatten-{opset}-axis{axis}", "Flatten", opset, {"x": x},
                                 attrs={"axis": axis}))
    out.append(make_case("Flatten-13-default", "Flatten", 13, {"x": x}))
    y = rand((3, 1, 4, 1), seed="sq")
    out.append(make_case("Squeeze-11-axes", "Squeeze", 11, {"x": y}, attrs={"axes": [1, -1]}))
    out.append(make_case("Squeeze-11-all", "Squeeze", 11, {"x": y}))
    out.append(make_case("Squeeze-13-axes", "Squeeze", 13, {"x": y},
                         {"axes": np.array([-3], np.int64)}))
    out.append(make_case("Squeeze-13-all", "Squeeze", 13, {"x": y}))
    z = rand((3, 4), seed="unsq")
    out.append(make_case("Unsqueeze-11", "Unsqueeze", 11, {"x": z}, attrs={"axes": [0, 3]}))
    out.append(make_case("Unsqueeze-11-neg", "Unsqueeze", 11, {"x": z}, attrs={"axes": [-1]}))
    out.append(make_case("Unsqueeze-1", "Unsqueeze", 1, {"x": z}, attrs={"axes": [1]}))
    out.append(make_case("Unsqueeze-13", "Unsqueeze", 13, {"x": z},
                         {"axes": np.array([0, -1], np.int64)}))
    out.append(make_case("Unsqueeze-13-scalar", "Unsqueeze", 13, {"x": np.array(3.0, np.float32)},
                         {"axes": np.array([0], np.int64)}))
    e = rand((3, 1), seed="expand")
    for name, shape in {"bidir": [2, 3, 4], "smaller": [4], "ones": [1, 1, 1],
                        "same": [3, 1]}.items():
        out.append(make_case(f"Expand-13-{name}", "Expand", 13, {"x": e},
                             {"shape": np.array(shape, np.int64)}))
    t = rand((2, 3), seed="tile")
    out.append(make_case("Tile-13", "Tile", 13, {"x": t}, {"r": np.array([2, 3], np.int64)}))
    out.append(make_case("Tile-6-ones", "Tile", 6, {"x": t}, {"r": np.array([1, 2], np.int64)}))
    out.append(make_case("Tile-13-const", "Tile", 13, {}, {"x": t,
                                                          "r": np.array([3, 1], np.int64)}))
    d = rand((1, 8, 2, 3), seed="d2s")
    for mode in ("DCR", "CRD"):
        out.append(make_case(f"DepthToSpace-13-{mode}", "DepthToSpace", 13, {"x": d},
                             attrs={"blocksize": 2, "mode": mode}))
    out.append(make_case("SpaceToDepth-13", "SpaceToDepth", 13,
                         {"x": rand((1, 2, 4, 6), seed="s2d")}, attrs={"blocksize": 2}))
    return out


def _movement_cases() -> list[OpCase]:
    out = []
    x = rand((2, 3, 4, 5), seed="mv")
    out.append(make_case("Transpose-13-default", "Transpose", 13, {"x": x}))
    out.append(make_case("Transpose-13-nhwc", "Transpose", 13, {"x": x},
                         attrs={"perm": [0, 2, 3, 1]}))
    out.append(make_case("Transpose-1-identity", "Transpose", 1, {"x": x},
                         attrs={"perm": [0, 1, 2, 3]}))
    a, b, c = rand((2, 3, 4)), rand((2, 1, 4), seed="b"), rand((2, 2, 4), seed="c")
    for opset in (4, 11, 13):
        out.append(make_case(f"Concat-{opset}-axis1", "Concat", opset,
                             {"a": a, "b": b}, {"c": c}, attrs={"axis": 1}))
    out.append(make_case("Concat-13-axis-neg", "Concat", 13, {"a": a, "b": a}, attrs={"axis": -1}))
    out.append(make_case("Concat-13-one", "Concat", 13, {"a": a}, attrs={"axis": 0}))
    out.append(make_case("Concat-13-empty-part", "Concat", 13, {"a": a},
                         {"e": np.zeros((2, 0, 4), np.float32)}, attrs={"axis": 1}))
    out.append(make_case("Concat-13-int", "Concat", 13, {"a": rand((2, 3), np.int64)},
                         {"b": rand((1, 3), np.int64, "b")}, attrs={"axis": 0}))
    out.append(make_case("Concat-1-default-axis", "Concat", 1, {"a": a, "b": b},
                         expected=lambda a, b: np.concatenate([a, b], axis=1)))
    s = rand((2, 6, 7), seed="split")
    out.append(make_case("Split-2-attr", "Split", 2, {"x": s}, attrs={"axis": 1, "split": [1, 5]},
                         outputs=2))
    out.append(make_case("Split-11-equal", "Split", 11, {"x": s}, attrs={"axis": 1}, outputs=3))
    out.append(make_case("Split-11-sizes-neg", "Split", 11, {"x": s},
                         attrs={"axis": -1, "split": [2, 2, 3]}, outputs=3))
    out.append(make_case("Split-13-input", "Split", 13, {"x": s},
                         {"split": np.array([4, 2], np.int64)}, attrs={"axis": 1}, outputs=2))
    out.append(make_case("Split-13-equal", "Split", 13, {"x": s}, outputs=2))
    out.append(make_case("Split-18-num-outputs", "Split", 18, {"x": s},
                         attrs={"axis": 2, "num_outputs": 3}, outputs=3))
    out.append(make_case("Split-18-input", "Split", 18, {"x": s},
                         {"split": np.array([3, 3], np.int64)}, attrs={"axis": 1}, outputs=2))
    # (ONNX Runtime crashes on an unnamed Split output: numpy reference)
    out.append(make_case("Split-13-skip-output", "Split", 13, {"x": s}, attrs={"axis": 1},
                         outputs=["y0", "", "y2"],
                         expected=lambda x: (x[:, :2], x[:, 4:])))
    # Slice: attributes before opset 10, inputs (with steps) after
    for name, (starts, ends, axes) in {"basic": ([0, 1], [2, 3], [0, 1]),
                                       "neg": ([-3], [-1], [2]),
                                       "overflow": ([1, -100], [1000, INT64_MAX], [3, 1]),
                                       "no-axes": ([1, 0, 1], [2, 2, 3], None)}.items():
        attrs = {"starts": starts, "ends": ends} | ({} if axes is None else {"axes": axes})
        out.append(make_case(f"Slice-9-{name}", "Slice", 9, {"x": x}, attrs=attrs))
        consts = {"starts": np.array(starts, np.int64), "ends": np.array(ends, np.int64)}
        if axes is not None:
            consts["axes"] = np.array(axes, np.int64)
        out.append(make_case(f"Slice-13-{name}", "Slice", 13, {"x": x}, consts))
    for name, (starts, ends, axes, steps) in {
            "step2": ([0, 1], [5, 4], [3, 2], [2, 2]),
            "reverse": ([-1], [-INT64_MAX], [1], [-1]),
            "reverse-partial": ([3, 10], [0, -10], [2, 3], [-2, -1]),
            "reverse-mid": ([-2], [-5], [3], [-1]),
            "neg-axes": ([1], [INT64_MAX], [-1], [3])}.items():
        for opset in (10, 13):
            out.append(make_case(f"Slice-{opset}-{name}", "Slice", opset, {"x": x},
                                 {"starts": np.array(starts, np.int64),
                                  "ends": np.array(ends, np.int64),
                                  "axes": np.array(axes, np.int64),
                                  "steps": np.array(steps, np.int64)}))
    out.append(make_case("Slice-13-int32-params", "Slice", 13, {"x": x},
                         {"starts": np.array([1], np.int32), "ends": np.array([3], np.int32)}))
    g = rand((5, 4, 3), seed="gather")
    for name, idx, axis in (("axis0", np.array([0, -1, 2], np.int64), 0),
                            ("axis1-2d", np.array([[0, 1], [3, -2]], np.int64), 1),
                            ("scalar", np.array(-1, np.int64), 2),
                            ("int32", np.array([4, 0], np.int32), -3)):
        out.append(make_case(f"Gather-13-{name}", "Gather", 13, {"x": g}, {"i": idx},
                             attrs={"axis": axis}))
    out.append(make_case("Gather-11-const-data", "Gather", 11, {"i": np.array([1, 0], np.int64)},
                         {"x": g}, order=["x", "i"]))
    out.append(make_case("Gather-1-int-data", "Gather", 1, {"x": rand((4, 3), np.int64)},
                         {"i": np.array([3, 1], np.int64)}))
    for name, idx in {"k1": np.array([[1], [-1]], np.int64),
                      "k2": np.array([[0, 1], [4, -1], [2, 2]], np.int64),
                      "k3": np.array([[[0, 1, 2]], [[4, 3, 0]]], np.int64)}.items():
        out.append(make_case(f"GatherND-12-{name}", "GatherND", 12, {"x": g}, {"i": idx}))
    out.append(make_case("GatherND-13-indices-input", "GatherND", 13,
                         {"x": g, "i": np.array([[1, 2], [3, 0]], np.int64)}))
    p = rand((1, 2, 4, 5), seed="pad")
    pads = [0, 0, 1, 2, 0, 0, 2, 1]
    for mode in ("constant", "reflect", "edge"):
        out.append(make_case(f"Pad-13-{mode}", "Pad", 13, {"x": p},
                             {"pads": np.array(pads, np.int64)}, attrs={"mode": mode}))
        out.append(make_case(f"Pad-2-{mode}", "Pad", 2, {"x": p}, attrs={"mode": mode,
                                                                          "pads": pads}))
    out.append(make_case("Pad-1-paddings", "Pad", 1, {"x": p},
                         attrs={"paddings": pads, "value": 2.0},
                         expected=lambda x: np.pad(x, [(0, 0), (0, 0), (1, 2), (2, 1)],
                                                   constant_values=2.0)))
    out.append(make_case("Pad-11-value", "Pad", 11, {"x": p},
                         {"pads": np.array(pads, np.int64), "v": np.array(1.5, np.float32)}))
    out.append(make_case("Pad-13-crop", "Pad", 13, {"x": p},
                         {"pads": np.array([0, 0, -1, 1, 0, 0, 1, -2], np.int64)}))
    out.append(make_case("Pad-18-axes", "Pad", 18, {"x": p},
                         {"pads": np.array([1, 2, 3, 0], np.int64),
                          "axes": np.array([-1, 2], np.int64)}, order=["x", "pads", "", "axes"]))
    out.append(make_case("Pad-19-wrap", "Pad", 19, {"x": p},
                         {"pads": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)},
                         attrs={"mode": "wrap"}))
    out.append(make_case("Pad-13-int", "Pad", 13, {"x": rand((3, 4), np.int32)},
                         {"pads": np.array([1, 0, 0, 2], np.int64),
                          "v": np.array(7, np.int32)}))
    return out


def _tensor_cases() -> list[OpCase]:
    out = []
    x = rand((2, 3), seed="t")
    value = numpy_helper.from_array(rand((2, 3), seed="cv"))
    for name, attrs in {"value": {"value": value}, "value_float": {"value_float": 2.5},
                        "value_floats": {"value_floats": [1.0, 2.0]},
                        "value_int": {"value_int": 7}, "value_ints": {"value_ints": [3, 4, 5]},
                        }.items():
        out.append(make_case(f"Constant-13-{name}", "Constant", 13, attrs=attrs))
    out.append(make_case("Constant-9-value", "Constant", 9, attrs={"value": value}))
    out.append(make_case("Identity-13", "Identity", 13, {"x": x}))
    out.append(make_case("Identity-16-int", "Identity", 16, {"x": rand((4,), np.int64)}))
    out.append(make_case("Dropout-7", "Dropout", 7, {"x": x}, attrs={"ratio": 0.3}))
    # ONNX Runtime's Dropout 7-11 kernel fills an inference mask with false; the spec's
    # reference (and ORT from opset 12) says all kept (true): follow the spec.
    out.append(make_case("Dropout-10-mask", "Dropout", 10, {"x": x}, outputs=2,
                         expected=lambda x: (x, np.ones(x.shape, np.bool_))))
    out.append(make_case("Dropout-13-ratio-input", "Dropout", 13, {"x": x},
                         {"ratio": np.array(0.2, np.float32)}))
    out.append(make_case("Dropout-13-mask", "Dropout", 13, {"x": x},
                         {"ratio": np.array(0.2, np.float32), "t": np.array(False)},
                         outputs=2))
    for dtype, to in ((np.float32, onnx.TensorProto.INT32), (np.int64, onnx.TensorProto.FLOAT),
                      (np.float32, onnx.TensorProto.BOOL), (np.bool_, onnx.TensorProto.FLOAT),
                      (np.int32, onnx.TensorProto.INT64), (np.float32, onnx.TensorProto.DOUBLE),
                      (np.float32, onnx.TensorProto.FLOAT)):
        data = rand((3, 4), dtype, "cast") * (3 if np.dtype(dtype).kind == "f" else 1)
        name = f"{np.dtype(dtype).name}-{onnx.TensorProto.DataType.Name(to)}"
        for opset in (6, 13, 19):
            out.append(make_case(f"Cast-{opset}-{name}", "Cast", opset, {"x": data},
                                 attrs={"to": to}))
    out.append(make_case("Cast-1-string-to", "Cast", 1, {"x": rand((3,), seed="c1") * 4},
                         attrs={"to": "INT32"}, expected=lambda x: x.astype(np.int32)))
    out.append(make_case("CastLike-15", "CastLike", 15, {"x": rand((3, 4)) * 4},
                         {"like": np.zeros(1, np.int64)}))
    out.append(make_case("ConstantOfShape-9-default", "ConstantOfShape", 9, {},
                         {"s": np.array([2, 3], np.int64)}))
    out.append(make_case("ConstantOfShape-20-int", "ConstantOfShape", 20, {},
                         {"s": np.array([4], np.int64)},
                         attrs={"value": numpy_helper.from_array(np.array([7], np.int64))}))
    out.append(make_case("ConstantOfShape-9-scalar", "ConstantOfShape", 9, {},
                         {"s": np.zeros(0, np.int64)},
                         attrs={"value": numpy_helper.from_array(np.array([1.5], np.float32))}))
    for name, (start, limit, delta) in {"int": (np.int64(2), np.int64(11), np.int64(3)),
                                        "neg": (np.int64(5), np.int64(-3), np.int64(-2)),
                                        "float": (np.float32(0.5), np.float32(2.0),
                                                  np.float32(0.25)),
                                        "empty": (np.int32(3), np.int32(1), np.int32(1))}.items():
        out.append(make_case(f"Range-11-{name}", "Range", 11, {},
                             {"start": np.array(start), "limit": np.array(limit),
                              "delta": np.array(delta)}))
    return out


def cases() -> list[OpCase]:
    """Every single-node case, in a stable order with unique ids."""
    from op_cases_encoder import (_control_and_quantize_cases, _encoder_cases,
                                  _recurrent_cases)
    from op_cases_more import more_cases

    everything = (_binary_cases() + _unary_cases() + _activation_cases() + _conv_cases()
                  + _pool_cases() + _matmul_cases() + _normalization_cases() + _reduce_cases()
                  + _shape_cases() + _movement_cases() + _tensor_cases()
                  + _recurrent_cases() + _control_and_quantize_cases() + _encoder_cases()
                  + more_cases())
    ids = [c.id for c in everything]
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates, f"duplicate case ids: {sorted(duplicates)}"
    return everything
