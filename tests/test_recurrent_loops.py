"""LSTM, GRU and RNN compiled as loops over time (compiler/ops/recurrent.py): one model per
op holds a node for each variant (directions, sequence_lens fed at run time or constant,
layout 1, peepholes, clip, input_forget, linear_before_reset, activations), compiled at two
sequence lengths and run against ONNX Runtime, as is the numpy interpreter on the imported
graph; both lengths have the same kernels (an unrolled recurrence would have a few per
step)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kiln.compiler.interpret import run_graph
from kiln.frontends.onnx import import_model
from reference import assert_matches, run_onnxruntime

BATCH, SIZE, HIDDEN = 3, 4, 37   # 37 units: whole vectors, register blocks and a scalar tail
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}

#: per op: (direction, lens: "" / "input" / "const", layout, extra attributes, optional
#: inputs given: b, h0, c0 (LSTM), p (LSTM))
VARIANTS = {
    "LSTM": [("forward", "", 0, {}, ("b",)),
             ("reverse", "input", 0, {}, ("b", "h0", "c0", "p")),
             ("bidirectional", "input", 0, {"clip": 1.5}, ("b",)),
             ("bidirectional", "", 0, {"input_forget": 1, "activations": [
                 "Sigmoid", "Tanh", "Tanh", "Sigmoid", "Relu", "Tanh"]}, ("h0",)),
             ("forward", "input", 1, {}, ("b", "h0", "c0"))],
    "GRU": [("forward", "", 0, {}, ()),
            ("reverse", "input", 0, {"linear_before_reset": 1}, ("b", "h0")),
            ("bidirectional", "const", 0, {"clip": 2.0}, ("b",)),
            ("bidirectional", "input", 1, {"linear_before_reset": 1}, ("b", "h0"))],
    "RNN": [("forward", "", 0, {}, ()),
            ("reverse", "input", 0, {}, ("b", "h0")),
            ("bidirectional", "const", 0, {"activations": ["Relu", "Tanh"]}, ("b",)),
            ("reverse", "input", 1, {}, ("h0",))],
}


def _graphs(op: str, seq: int) -> tuple[onnx.ModelProto, onnx.ModelProto, dict]:
    """Every variant of `op` as one node of one graph, reading x (or xb for layout 1); and
    the graph ONNX Runtime runs as the reference, where each layout-1 node (which ONNX
    Runtime refuses) is its layout-0 twin on x between Transposes."""
    rng = np.random.default_rng(sorted(VARIANTS).index(op))
    gates = GATES[op]
    x = rng.standard_normal((seq, BATCH, SIZE)).astype(np.float32)
    lens = np.array([seq, 1, max(1, seq - 2)], np.int32)
    feed = {"x": x, "xb": np.ascontiguousarray(x.transpose(1, 0, 2)), "lens": lens}
    nodes, reference_nodes, inits, outputs = [], [], [], []
    for n, (direction, lens_from, layout, attrs, given) in enumerate(VARIANTS[op]):
        dirs = 2 if direction == "bidirectional" else 1
        arrays = {"w": (dirs, gates * HIDDEN, SIZE), "r": (dirs, gates * HIDDEN, HIDDEN),
                  "b": (dirs, 2 * gates * HIDDEN), "h0": (dirs, BATCH, HIDDEN),
                  "c0": (dirs, BATCH, HIDDEN), "p": (dirs, 3 * HIDDEN)}
        names, batch_major = {}, {}
        for key, shape in arrays.items():
            if key in ("w", "r") or key in given:
                names[key] = f"{key}{n}"
                data = (rng.standard_normal(shape) * 0.6).astype(np.float32)
                inits.append(numpy_helper.from_array(data, names[key]))
                if layout and key in ("h0", "c0"):
                    batch_major[key] = f"{key}{n}_b"
                    inits.append(numpy_helper.from_array(
                        np.ascontiguousarray(data.transpose(1, 0, 2)), batch_major[key]))
        if lens_from == "const":
            names["lens"] = f"lens{n}"
            inits.append(numpy_helper.from_array(lens[::-1].copy(), names["lens"]))
        elif lens_from == "input":
            names["lens"] = "lens"
        order = ["w", "r", "b", "lens", "h0"] + (["c0", "p"] if op == "LSTM" else [])
        outs = [f"y{n}", f"yh{n}"] + ([f"yc{n}"] if op == "LSTM" else [])
        outputs += outs
        attrs = {"hidden_size": HIDDEN, "direction": direction, **attrs}
        nodes.append(helper.make_node(
            op, ["xb" if layout else "x"] + [batch_major.get(k, names.get(k, "")) for k in order],
            outs, layout=layout, **attrs))
        if not layout:
            reference_nodes.append(nodes[-1])
            continue
        reference_nodes.append(helper.make_node(
            op, ["x"] + [names.get(k, "") for k in order], [f"{o}_t" for o in outs], **attrs))
        reference_nodes += [helper.make_node("Transpose", [f"{o}_t"], [o],
                                             perm=[2, 0, 1, 3] if i == 0 else [1, 0, 2])
                            for i, o in enumerate(outs)]

    def model(body: list) -> onnx.ModelProto:
        graph = helper.make_graph(
            body, f"{op.lower()}_loops",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape),
             helper.make_tensor_value_info("xb", TensorProto.FLOAT, feed["xb"].shape),
             helper.make_tensor_value_info("lens", TensorProto.INT32, lens.shape)],
            [helper.make_empty_tensor_value_info(name) for name in outputs], inits)
        made = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
        return onnx.shape_inference.infer_shapes(made)

    return model(nodes), model(reference_nodes), feed


@pytest.mark.parametrize("op", sorted(VARIANTS))
def test_recurrence_matches_onnxruntime_at_two_lengths(op, compile_and_load, tmp_path):
    kernels = []
    for seq in (4, 11):
        model, reference_model, feed = _graphs(op, seq)
        session = compile_and_load(model, name=f"{op}_{seq}",
                                   keep_sources=str(tmp_path / f"c{seq}"))
        expected = run_onnxruntime(reference_model, feed)
        for how, actual in (("artifact", session.run(feed)),
                            ("interpreter", run_graph(import_model(model), feed))):
            assert len(actual) == len(expected)
            for (name, value), want in zip(actual.items(), expected):
                assert_matches(value, want, what=f"{op} seq {seq} ({how}): {name}")
        lines = (tmp_path / f"c{seq}" / "model.c").read_text().splitlines()
        kernels.append(sum(line.startswith("static void k_") for line in lines))
    assert kernels[0] == kernels[1], f"{op}: {kernels[0]} kernels at 4 steps, {kernels[1]} at 11"


def test_sequence_lens_beyond_the_sequence_is_a_clear_error(tmp_path):
    """A constant sequence_lens longer than the sequence is refused at compile time."""
    import kiln
    from kiln.compiler.errors import KilnError

    x = np.zeros((3, 2, SIZE), np.float32)
    inits = [numpy_helper.from_array(np.zeros((1, HIDDEN, SIZE), np.float32), "w"),
             numpy_helper.from_array(np.zeros((1, HIDDEN, HIDDEN), np.float32), "r"),
             numpy_helper.from_array(np.array([3, 4], np.int32), "lens")]
    node = helper.make_node("RNN", ["x", "w", "r", "", "lens"], ["y"], hidden_size=HIDDEN)
    graph = helper.make_graph([node], "rnn_lens",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_empty_tensor_value_info("y")], inits)
    model = onnx.shape_inference.infer_shapes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]))
    with pytest.raises(KilnError, match=r"sequence_lens \[3, 4\] are not within \[0, 3\]"):
        kiln.compile(model, output=str(tmp_path / "rnn.so"))
