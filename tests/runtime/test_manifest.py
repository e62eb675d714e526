"""The manifest inside every artifact: what the compile call was given comes back, the same,
from the C API and from the file, and `kiln inspect OUT.so` prints it."""

from __future__ import annotations

import hashlib
import json
import subprocess

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from kiln import __version__
from kiln.cli import main
from kiln.driver import compile_detailed
from kiln.runtime import load
from kiln.runtime.manifest import read_manifest
from reference import assert_matches, run_onnxruntime


def _model() -> onnx.ModelProto:
    w = np.random.default_rng(3).standard_normal((6, 5)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="fc"),
             helper.make_node("Relu", ["m"], ["y"], name="act")]
    graph = helper.make_graph(
        nodes, "manifested", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])],
        [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, producer_name="manifest-test",
                             opset_imports=[helper.make_opsetid("", 17)])


def test_manifest_round_trips(tmp_path, capsys):
    path = tmp_path / "model.onnx"
    onnx.save(_model(), path)
    dumped = tmp_path / "chosen.jsonl"
    result = compile_detailed(path, output=tmp_path / "m.so", dims={"n": 3}, prefix="mf_",
                              threads_max=3, dump_schedule=dumped)
    feed = {"x": np.random.default_rng(4).standard_normal((3, 6)).astype(np.float32)}
    with load(result.library, threads=2) as session:
        manifest = session.manifest
        (actual,) = session.run(feed).values()
        inputs, outputs, workspace = session.inputs, session.outputs, session.workspace_size
    assert_matches(actual, run_onnxruntime(_model(), feed)[0])

    assert manifest == read_manifest(str(result.library))   # the C API and the ELF section
    assert manifest["kiln"] == __version__
    assert manifest["model"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["model"]["producer"] == "manifest-test"
    assert manifest["model"]["opsets"] == {"ai.onnx": 17}
    assert manifest["options"] == {"threads_max": 3, "prefix": "mf_", "emit": "c",
                                   "dims": {"n": 3}}
    assert manifest["inputs"] == [{"name": t.name, "dtype": str(t.dtype), "shape": list(t.shape)}
                                  for t in inputs]
    assert manifest["outputs"] == [{"name": t.name, "dtype": str(t.dtype),
                                    "shape": list(t.shape)} for t in outputs]
    (level,) = manifest["levels"]
    assert level["arena_bytes"] == workspace == result.arena_size
    assert level["weight_bytes"] == result.weights_size
    chosen = [json.loads(line) for line in dumped.read_text().splitlines()]
    assert [(e["group"], e["kernel"], e["schedule"]) for e in level["schedules"]] == \
        [(e["group"], e["kernel"], e["schedule"]) for e in chosen]
    assert level["vector_bits"] == chosen[0]["vector_bits"]

    assert main(["inspect", str(result.library)]) == 0
    text = capsys.readouterr().out
    assert manifest["model"]["sha256"] in text and "x: float32 [3, 6]" in text
    assert main(["inspect", str(result.library), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == manifest


def test_a_library_without_a_manifest_is_a_clear_error(cc, tmp_path, capsys):
    (tmp_path / "other.c").write_text("int other(void) { return 1; }\n")
    subprocess.run([cc, "-shared", "-fPIC", str(tmp_path / "other.c"), "-o",
                    str(tmp_path / "other.so")], check=True)
    assert main(["inspect", str(tmp_path / "other.so")]) == 2
    assert "has no manifest" in capsys.readouterr().err


def test_kiln_version(capsys):
    try:
        main(["--version"])
    except SystemExit as stop:
        assert stop.code == 0
    assert capsys.readouterr().out.strip() == f"kiln {__version__}"
