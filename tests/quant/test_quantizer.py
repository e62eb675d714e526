"""Kiln quantizing a float model itself (--quantize int8 / dynamic, passes/quantize.py,
quantizer/): a small CNN against ONNX Runtime running the float model and the same model
quantized by onnxruntime's quantize_static; every bad option or calibration input a clear
KilnError before anything is built; the command line round trip with the accuracy report."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantFormat, quantize_dynamic, quantize_static

from kiln.compiler.errors import KilnError
from kiln.driver import compile_detailed
from kiln.runtime import load

import qdq_models
from kernel_build import KERNELS, LAYOUT, PORTABLE, VNNI, VNNI_KERNELS, kernels_of

INTEGER = VNNI_KERNELS | PORTABLE
AROUND = {"copy_loops", "elementwise_loops", "reduce_loops"} | LAYOUT


def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _rel_rms(value: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(value - reference) / np.linalg.norm(reference))


@pytest.fixture(scope="module")
def cnn():
    rng = np.random.default_rng(11)
    model = qdq_models.float_cnn(rng)
    calibration = rng.standard_normal((16, *qdq_models.INPUT)).astype(np.float32)
    test = rng.standard_normal((8, *qdq_models.INPUT)).astype(np.float32)
    return model, calibration, test


def test_int8_cnn_runs_integer_kernels_and_is_as_close_to_float_as_onnxruntimes(
        tmp_path, cnn):
    """Per-channel int8 weights, uint8 activations: Kiln's error against float (ONNX
    Runtime's float answer) at most 1.5x that of onnxruntime's own quantize_static on the
    same calibration samples; convs and the gemm on integer kernels; weights a third of
    float's or less."""
    model, calibration, test = cnn
    result = compile_detailed(model, output=str(tmp_path / "q.so"), quantize="int8",
                              calibration={"x": calibration}, verify=True)
    kernels = kernels_of(result.library)
    assert kernels - AROUND <= INTEGER and kernels & INTEGER, kernels
    floats = compile_detailed(model, output=str(tmp_path / "f.so"))
    assert result.weights_size <= floats.weights_size / 3

    class Samples:
        def __init__(self):
            self.items = iter({"x": s} for s in calibration)

        def get_next(self):
            return next(self.items, None)

    onnx.save(model, tmp_path / "float.onnx")
    quantize_static(str(tmp_path / "float.onnx"), str(tmp_path / "ort_qdq.onnx"), Samples(),
                    quant_format=QuantFormat.QDQ, per_channel=True)
    ort_int8 = onnx.load(str(tmp_path / "ort_qdq.onnx"))
    with load(result.library) as session:
        for x in test:
            reference = _ort(model, x)
            ours = _rel_rms(session.run({"x": x})["y"], reference)
            theirs = _rel_rms(_ort(ort_int8, x), reference)
            assert ours <= 1.5 * theirs + 1e-3, (ours, theirs)


def test_keep_float_leaves_that_layer_in_float(tmp_path, cnn):
    """The model's nodes are unnamed: each is known by its output's name (the Gemm's is
    y); the report names the layers so."""
    model, calibration, test = cnn
    result = compile_detailed(model, output=str(tmp_path / "q.so"), quantize="int8",
                              calibration={"x": calibration}, keep_float=["y"])
    assert [(r.name, r.layers) for r in result.quantized] == [("x", ["c1"]), ("r1", ["c2"])]
    assert "qmatmul_loops" not in kernels_of(result.library)
    with load(result.library) as session:
        x = test[0]
        assert _rel_rms(session.run({"x": x})["y"], _ort(model, x)) < 0.05


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_dynamic_matmul_with_bias_is_as_close_as_onnxruntimes_quantize_dynamic(tmp_path,
                                                                              kernel):
    """MatMul by a constant [64, 32] weight + bias, its input quantized at run time: on the
    VNNI kernel and on the portable loops, Kiln's error against float at most 1.5x that of
    onnxruntime's quantize_dynamic (per-tensor weights there, per-column here)."""
    if kernel == "int8_gemm_vnni" and not VNNI:
        pytest.skip("this CPU has no avx512_vnni: the VNNI kernel cannot run here")
    rng = np.random.default_rng(4)
    w = rng.standard_normal((64, 32)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
         helper.make_node("Add", ["m", "b"], ["y"], name="bias")], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 32])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    result = compile_detailed(model, output=str(tmp_path / "q.so"), quantize="dynamic",
                              cpu=KERNELS[kernel], verify=True)
    assert [(r.name, r.layers) for r in result.quantized] == [("x", ["mm"])]
    assert kernels_of(result.library) & INTEGER
    onnx.save(model, tmp_path / "float.onnx")
    quantize_dynamic(str(tmp_path / "float.onnx"), str(tmp_path / "dynamic.onnx"))
    ort_dynamic = onnx.load(str(tmp_path / "dynamic.onnx"))
    x = rng.standard_normal((1, 16, 64)).astype(np.float32)
    reference = _ort(model, x)
    with load(result.library) as session:
        ours = _rel_rms(session.run({"x": x})["y"], reference)
    assert ours <= 1.5 * _rel_rms(_ort(ort_dynamic, x), reference) + 1e-3, ours


def _samples_file(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


BAD = {
    "unknown input name": (dict(quantize="int8"), {"image": (16, 1, 3, 16, 16)},
                           "'image' is no input of the model"),
    "wrong sample shape": (dict(quantize="int8"), {"x": (16, 3, 16, 16)},
                           "give [N, 1, 3, 16, 16]"),
    "no samples": (dict(quantize="int8"), {"x": (0, 1, 3, 16, 16)}, "are empty"),
    "empty file": (dict(quantize="int8"), {}, "hold no arrays"),
    "nan in samples": (dict(quantize="int8"), "nan", "NaN or infinite"),
    "keep-float names no node": (dict(quantize="int8", keep_float=["c9"]), None,
                                 "--keep-float names no node"),
    "calibration without quantize": (dict(), {"x": (4, 1, 3, 16, 16)},
                                     "--calibration needs --quantize int8"),
    "int8 without calibration": (dict(quantize="int8"), "none",
                                 "--quantize int8 needs calibration samples"),
    "unknown quantize": (dict(quantize="int4"), {"x": (4, 1, 3, 16, 16)},
                         "--quantize 'int4': give one of int8, dynamic"),
    "unknown calibrate": (dict(quantize="int8", calibrate="mse"), {"x": (4, 1, 3, 16, 16)},
                          "--calibrate 'mse'"),
    "report of dynamic": (dict(quantize="dynamic", quant_report=True), "none",
                          "takes no calibration"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_quantization_input_is_one_clear_error_before_building(tmp_path, cnn, case):
    model, calibration, _ = cnn
    options, samples, message = BAD[case]
    if samples == "nan":
        bad = calibration.copy()
        bad[3, 0, 1, 2, 2] = np.nan
        options = {**options, "calibration": _samples_file(tmp_path / "s.npz", x=bad)}
    elif samples is None:
        options = {**options, "calibration": {"x": calibration}}
    elif samples != "none":
        arrays = {k: np.zeros(shape, np.float32) for k, shape in samples.items()}
        options = {**options, "calibration": _samples_file(tmp_path / "s.npz", **arrays)}
    output = tmp_path / "q.so"
    with pytest.raises(KilnError, match=message.replace("[", r"\[").replace("(", r"\(")):
        compile_detailed(model, output=str(output), **options)
    assert not output.exists() and not list(tmp_path.glob("*.h"))


def test_keep_float_error_lists_near_names(tmp_path, cnn):
    model, calibration, _ = cnn
    with pytest.raises(KilnError, match="'c3' \\(near: (c1, c2|c2, c1)"):
        compile_detailed(model, output=str(tmp_path / "q.so"), quantize="int8",
                         calibration={"x": calibration}, keep_float=["c1", "c3"])


def test_command_line_round_trip_with_report(tmp_path, cnn):
    """kiln compile --quantize int8 --calibration S.npz --calibrate percentile
    --quant-report R.json prints the worst tensors first and writes every one; the
    artifact runs from `kiln run`; a bad --calibrate value exits 2 with one line."""
    model, calibration, test = cnn
    onnx.save(model, tmp_path / "cnn.onnx")
    samples = _samples_file(tmp_path / "s.npz", x=calibration)
    command = [sys.executable, "-m", "kiln", "compile", str(tmp_path / "cnn.onnx"), "-o",
               str(tmp_path / "q.so"), "--quantize", "int8", "--calibration", samples,
               "--calibrate", "percentile", "--quant-report", str(tmp_path / "r.json")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "quantization accuracy against float (percentile calibration, 16 samples" \
        in done.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    rows = report["rows"]
    assert {r["kind"] for r in rows} == {"activation", "output"} and len(rows) == 4
    assert [r["cosine"] for r in rows] == sorted(r["cosine"] for r in rows)
    output = next(r for r in rows if r["kind"] == "output")
    assert 0.99 < output["cosine"] <= 1 and output["rel_rms"] < 0.1
    np.save(tmp_path / "x.npy", test[0])
    ran = subprocess.run([sys.executable, "-m", "kiln", "run", str(tmp_path / "q.so"),
                          "--input", f"x={tmp_path / 'x.npy'}", "--output-dir",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    y = np.load(tmp_path / "out" / "y.npy")
    assert _rel_rms(y, _ort(model, test[0])) < 0.05
    bad = subprocess.run(command[:-4] + ["--calibrate", "kl"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "--calibrate 'kl'" in bad.stderr
