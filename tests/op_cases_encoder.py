"""Single-node cases for recurrent ops, control flow, quantization and encoder patterns:
the second half of op_cases.py's catalogue (same OpCase records, same builders)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from op_cases import OpCase, _value_info, make_case, rand

def _recurrent_cases() -> list[OpCase]:
    """LSTM, GRU and RNN: directions, biases, initial states, peepholes, layouts."""
    out = []
    seq, batch, size, hidden = 3, 2, 4, 5
    x = rand((seq, batch, size), seed="rx")
    for op, gates, opsets in (("LSTM", 4, (7, 14)), ("GRU", 3, (7, 14)), ("RNN", 1, (7, 14))):
        for direction in ("forward", "reverse", "bidirectional"):
            dirs = 2 if direction == "bidirectional" else 1
            w = rand((dirs, gates * hidden, size), seed=f"{op}w") * 0.5
            r = rand((dirs, gates * hidden, hidden), seed=f"{op}r") * 0.5
            b = rand((dirs, 2 * gates * hidden), seed=f"{op}b") * 0.5
            h0 = rand((dirs, batch, hidden), seed=f"{op}h")
            outputs = ["y", "y_h", "y_c"] if op == "LSTM" else ["y", "y_h"]
            for opset in opsets:
                base = f"{op}-{opset}-{direction}"
                attrs = {"hidden_size": hidden, "direction": direction}
                out.append(make_case(f"{base}-plain", op, opset, {"x": x}, {"w": w, "r": r},
                                     attrs=attrs, outputs=outputs))
                consts = {"w": w, "r": r, "b": b}
                order = ["x", "w", "r", "b", "", "h0"]
                if op == "LSTM":
                    consts["c0"] = rand((dirs, batch, hidden), seed="c0")
                    consts["p"] = rand((dirs, 3 * hidden), seed="peep")
                    order += ["c0", "p"]
                extra = {"linear_before_reset": 1} if op == "GRU" else {}
                out.append(make_case(f"{base}-full", op, opset, {"x": x, "h0": h0}, consts,
                                     attrs={**attrs, **extra}, order=order, outputs=outputs))
    out.append(make_case("LSTM-14-clip-input-forget", "LSTM", 14, {"x": x},
                         {"w": rand((1, 4 * hidden, size), seed="lw"),
                          "r": rand((1, 4 * hidden, hidden), seed="lr")},
                         attrs={"hidden_size": hidden, "clip": 0.7, "input_forget": 1},
                         outputs=["y", "y_h", "y_c"]))
    out.append(make_case("GRU-7-activations", "GRU", 7, {"x": x},
                         {"w": rand((1, 3 * hidden, size), seed="gw"),
                          "r": rand((1, 3 * hidden, hidden), seed="gr")},
                         attrs={"hidden_size": hidden, "activations": ["Relu", "Tanh"]},
                         outputs=["y", "y_h"]))
    out.append(make_case("LSTM-14-only-final-state", "LSTM", 14, {"x": x},
                         {"w": rand((1, 4 * hidden, size), seed="lw"),
                          "r": rand((1, 4 * hidden, hidden), seed="lr")},
                         attrs={"hidden_size": hidden}, outputs=["", "y_h"]))
    return out


def _if_case(case_id: str, opset: int, cond: np.ndarray | None, pinned: bool) -> OpCase:
    """If choosing between x*2 (then) and x-1 (else); the branches read the outer x."""
    then_graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["t"])], "then", [],
        [helper.make_tensor_value_info("t", onnx.TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(np.array(2, np.float32), "two")])
    else_graph = helper.make_graph(
        [helper.make_node("Sub", ["x", "one"], ["e"])], "else", [],
        [helper.make_tensor_value_info("e", onnx.TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(np.array(1, np.float32), "one")])
    x = rand((2, 3), seed="ifx")
    inputs = {"x": x} if pinned else {"x": x, "c": cond}
    node = helper.make_node("If", ["c"], ["y"], then_branch=then_graph, else_branch=else_graph)
    graph = helper.make_graph(
        [node], case_id, [_value_info(n, a) for n, a in inputs.items()],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(cond, "c")] if pinned else [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return OpCase(case_id, model, inputs)


def _control_and_quantize_cases() -> list[OpCase]:
    """If (condition constant or known at run time), Dequantize/QuantizeLinear, IsNaN/IsInf."""
    out = []
    for value in (True, False):
        out.append(_if_case(f"If-11-constant-{value}", 11, np.array(value), True))
        out.append(_if_case(f"If-16-run-time-{value}", 16, np.array([value]), False))
    special = np.array([[1.0, np.nan, np.inf], [-np.inf, 0.0, -2.5]], np.float32)
    for opset in (9, 13, 20):
        out.append(make_case(f"IsNaN-{opset}", "IsNaN", opset, {"x": special}))
    for opset, attrs in ((10, {}), (20, {"detect_negative": 0}), (20, {"detect_positive": 0})):
        name = "-".join(f"{k}" for k in attrs) or "both"
        out.append(make_case(f"IsInf-{opset}-{name}", "IsInf", opset, {"x": special},
                             attrs=attrs))
    q8 = rand((3, 4), np.int8, "q8", -128, 128)
    for opset in (10, 13, 19):
        out.append(make_case(f"DequantizeLinear-{opset}-int8-const", "DequantizeLinear", opset,
                             {}, {"x": q8, "s": np.array(0.05, np.float32),
                                  "z": np.array(3, np.int8)}))
        out.append(make_case(f"DequantizeLinear-{opset}-uint8-input", "DequantizeLinear", opset,
                             {"x": rand((3, 4), np.uint8, "u8", 0, 256)},
                             {"s": np.array(0.1, np.float32), "z": np.array(128, np.uint8)}))
        out.append(make_case(f"QuantizeLinear-{opset}-uint8", "QuantizeLinear", opset,
                             {"x": rand((3, 4), seed="qx") * 10},
                             {"s": np.array(0.07, np.float32), "z": np.array(120, np.uint8)}))
        out.append(make_case(f"QuantizeLinear-{opset}-int8-no-zero", "QuantizeLinear", opset,
                             {"x": rand((3, 4), seed="qy") * 10},
                             {"s": np.array(0.5, np.float32), "z": np.array(0, np.int8)}))
    out.append(make_case("DequantizeLinear-13-per-axis", "DequantizeLinear", 13,
                         {"x": rand((2, 3, 4), np.int8, "pa", -128, 128)},
                         {"s": np.array([0.1, 0.2, 0.3], np.float32),
                          "z": np.array([0, 1, -1], np.int8)}, attrs={"axis": 1}))
    out.append(make_case("QuantizeLinear-13-per-axis", "QuantizeLinear", 13,
                         {"x": rand((2, 3, 4), seed="qpa") * 5},
                         {"s": np.array([0.1, 0.2, 0.3], np.float32),
                          "z": np.array([0, 10, -10], np.int8)}, attrs={"axis": -2}))
    return out


def _encoder_cases() -> list[OpCase]:
    """What transformer encoders use, in the variants exporters emit: Einsum, attention-mask
    Where/Equal on int64 and bool, rank-0 tensors, batch-broadcast MatMul, old Softmax axes."""
    out = []
    for equation, shapes in {"bij,bjk->bik": [(2, 3, 4), (2, 4, 5)],
                             "bhid,bhjd->bhij": [(1, 2, 5, 4), (1, 2, 6, 4)],
                             "bhij,bhjd->bhid": [(1, 2, 5, 6), (1, 2, 6, 4)],
                             "ij->ji": [(3, 4)], "ij->": [(3, 4)], "ij->i": [(3, 4)],
                             "i,i->": [(5,), (5,)], "i,j->ij": [(3,), (4,)],
                             "...ij,...jk->...ik": [(2, 3, 4), (2, 4, 5)],
                             "bij,jk": [(2, 3, 4), (4, 5)],
                             "abc,cd,de->abe": [(2, 3, 4), (4, 5), (5, 6)],
                             "bid,bjd->bij": [(2, 3, 4), (2, 5, 4)]}.items():
        inputs = {f"x{i}": rand(s, seed=f"ein{i}") for i, s in enumerate(shapes)}
        name = equation.replace("->", "_to_").replace(",", "_").replace("...", "E") or "all"
        out.append(make_case(f"Einsum-12-{name}", "Einsum", 12, inputs,
                             attrs={"equation": equation}))
    mask = rand((1, 1, 1, 6), np.int64, "mask", 0, 2)
    out.append(make_case("Where-16-attention-mask", "Where", 16, {"x": rand((1, 2, 4, 6))},
                         {"m": mask.astype(bool), "neg": np.array(-1e9, np.float32)},
                         order=["m", "x", "neg"]))
    out.append(make_case("Where-9-int64-scalar-branches", "Where", 9,
                         {"c": rand((3, 4), np.bool_, "wc")},
                         {"a": np.array(7, np.int64), "b": rand((4,), np.int64, "wb")}))
    out.append(make_case("Equal-13-int64-scalar", "Equal", 13,
                         {"x": rand((2, 6), np.int64, "eq", 0, 3)}, {"z": np.array(0, np.int64)}))
    out.append(make_case("Not-1-mask", "Not", 1, {"x": rand((2, 6), np.bool_, "not")}))
    out.append(make_case("And-7-broadcast", "And", 7, {"a": rand((2, 1, 6), np.bool_, "a1"),
                                                      "b": rand((1, 3, 6), np.bool_, "a2")}))
    out.append(make_case("Less-13-int64", "Less", 13, {"a": rand((2, 5), np.int64, "l1"),
                                                       "b": rand((5,), np.int64, "l2")}))
    out.append(make_case("Gather-13-scalar-index", "Gather", 13, {"x": rand((5, 4), seed="gs")},
                         {"i": np.array(-2, np.int64)}, attrs={"axis": 0}))
    out.append(make_case("Gather-13-embedding", "Gather", 13, {"ids": rand((1, 7), np.int64,
                                                                          "ids", 0, 30)},
                         {"table": rand((30, 8), seed="emb")}, order=["table", "ids"]))
    out.append(make_case("MatMul-13-batch-broadcast", "MatMul", 13,
                         {"a": rand((2, 1, 4, 5), seed="mb1"), "b": rand((3, 5, 6), seed="mb2")}))
    out.append(make_case("MatMul-13-vector-matrix", "MatMul", 13,
                         {"a": rand((5,), seed="mv1"), "b": rand((2, 5, 3), seed="mv2")}))
    for opset, axis in ((11, 1), (11, -1), (13, 1), (1, 2)):
        out.append(make_case(f"Softmax-{opset}-rank3-axis{axis}", "Softmax", opset,
                             {"x": rand((2, 3, 4), seed="sm3")}, attrs={"axis": axis}))
    out.append(make_case("Unsqueeze-13-rank0-two-axes", "Unsqueeze", 13, {"x": np.array(2.5, np.float32)},
                         {"axes": np.array([0, 1], np.int64)}))
    out.append(make_case("Unsqueeze-11-attribute", "Unsqueeze", 11, {"x": rand((3, 4))},
                         attrs={"axes": [0, 3]}))
    out.append(make_case("Squeeze-11-attribute", "Squeeze", 11, {"x": rand((1, 3, 1, 4))},
                         attrs={"axes": [0, -2]}))
    out.append(make_case("Expand-13-scalar", "Expand", 13, {"x": np.array(1.5, np.float32)},
                         {"s": np.array([2, 3], np.int64)}))
    out.append(make_case("Pow-15-int64-cube", "Pow", 15, {"x": rand((3, 4))},
                         {"p": np.array(3, np.int64)}))
    out.append(make_case("Sqrt-13-rank0", "Sqrt", 13, {"x": np.array(6.25, np.float32)}))
    out.append(make_case("Cast-13-bool-to-float", "Cast", 13, {"x": rand((2, 6), np.bool_, "cb")},
                         attrs={"to": onnx.TensorProto.FLOAT}))
    return out
