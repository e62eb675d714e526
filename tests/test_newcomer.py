"""What a newcomer meets first (issue 20, item 5): each rough edge of the command line and
the Python API that a first session runs into, reproduced on a tiny model built here."""

from __future__ import annotations

import io
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import kiln
from kiln.cli import main
from kiln.runtime import load

from reference import assert_matches, run_onnxruntime


def _model(nodes, inputs, outputs, initializers=(), opset: int = 17):
    """A model from (name, elem_type, shape) inputs and (name, elem_type) outputs."""
    graph = helper.make_graph(
        nodes, "newcomer",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
        [numpy_helper.from_array(a, n) for n, a in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _conv_model():
    """Conv (a GEMM kernel) then Relu, on an input with a named batch dim."""
    weight = np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32)
    return _model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
                   helper.make_node("Relu", ["y"], ["z"])],
                  [("x", TensorProto.FLOAT, ["N", 3, 8, 12])], [("z", TensorProto.FLOAT)],
                  [("w", weight)])


# -- zero-size dims: empty outputs, never an internal error ------------------------------

ZERO_SIZE_CASES = {
    "conv_batch_0": (_conv_model, {"x": (0, 3, 8, 12)}),
    "matmul_m_0": (lambda: _model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                                  [("x", TensorProto.FLOAT, [0, 4])], [("y", TensorProto.FLOAT)],
                                  [("w", np.ones((4, 5), np.float32))]), {"x": (0, 4)}),
    "matmul_k_0": (lambda: _model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                                  [("x", TensorProto.FLOAT, [3, 0])], [("y", TensorProto.FLOAT)],
                                  [("w", np.ones((0, 5), np.float32))]), {"x": (3, 0)}),
    "reduce_max_of_empty": (lambda: _model(
        [helper.make_node("ReduceMax", ["x", "axes"], ["y"], keepdims=1)],
        [("x", TensorProto.FLOAT, [2, 0, 4])], [("y", TensorProto.FLOAT)],
        [("axes", np.array([1], np.int64))], opset=18), {"x": (2, 0, 4)}),
    "reduce_mean_of_empty": (lambda: _model(
        [helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=0)],
        [("x", TensorProto.FLOAT, [2, 0, 4])], [("y", TensorProto.FLOAT)],
        [("axes", np.array([1], np.int64))], opset=18), {"x": (2, 0, 4)}),
}


@pytest.mark.parametrize("case", sorted(ZERO_SIZE_CASES))
def test_zero_size_inputs_compile_and_match_onnxruntime(case, compile_and_load):
    build, shapes = ZERO_SIZE_CASES[case]
    model = build()
    feed = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    session = compile_and_load(model, shapes=shapes)
    outputs = session.run(feed)
    for (name, actual), expected in zip(outputs.items(), run_onnxruntime(model, feed)):
        assert_matches(actual, expected, what=f"{case}: {name}")


def test_zero_batch_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "conv.onnx"
    path.write_bytes(_conv_model().SerializeToString())
    for flag in (["--shape", "x=0x3x8x12"], ["--dim", "N=0"]):
        assert main(["compile", str(path), *flag, "-o", str(tmp_path / "conv.so")]) == 0
    assert "internal error" not in capsys.readouterr().err
    session = load(str(tmp_path / "conv.so"))
    assert session.run({"x": np.zeros((0, 3, 8, 12), np.float32)})["z"].shape == (0, 4, 8, 12)
    session.close()


# -- a closed pipe (`kiln targets | head -1`) ends the command quietly ---------------------

@pytest.mark.parametrize("command", ["targets", "kernels", "inspect"])
def test_closed_stdout_pipe_exits_quietly(command, tmp_path):
    argv = [command]
    if command == "inspect":
        argv.append(str(tmp_path / "conv.onnx"))
        (tmp_path / "conv.onnx").write_bytes(_conv_model().SerializeToString())
    process = subprocess.Popen([sys.executable, "-m", "kiln", *argv],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()   # before the interpreter has started: every write fails
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait() == 128 + signal.SIGPIPE
    assert stderr == ""


# -- kiln run: random inputs said, outputs summarised, --output-dir safe ------------------

def _slash_model():
    """Two outputs whose names are paths, as PaddlePaddle exports name them."""
    return _model([helper.make_node("Relu", ["x"], ["save_infer_model/scale_0"]),
                   helper.make_node("Neg", ["x"], ["../escape"])],
                  [("x", TensorProto.FLOAT, [2, 3])],
                  [("save_infer_model/scale_0", TensorProto.FLOAT),
                   ("../escape", TensorProto.FLOAT)])


@pytest.fixture
def slash_library(tmp_path):
    model = _slash_model()
    return model, kiln.compile(model, output=str(tmp_path / "slash.so"))


def test_run_output_dir_is_created_and_names_with_slash_stay_inside(slash_library, tmp_path,
                                                                     capsys):
    model, library = slash_library
    x = np.random.default_rng(3).standard_normal((2, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    folder = tmp_path / "new" / "outputs"
    assert main(["run", library, "--input", f"x={tmp_path / 'x.npy'}", "--repeat", "1",
                 "--output-dir", str(folder)]) == 0
    written = sorted(p.name for p in folder.iterdir())
    assert written == [".._escape.npy", "save_infer_model_scale_0.npy"]
    assert not (tmp_path / "new" / "escape.npy").exists()
    expected = run_onnxruntime(model, {"x": x})
    assert_matches(np.load(folder / "save_infer_model_scale_0.npy"), expected[0])
    assert_matches(np.load(folder / ".._escape.npy"), expected[1])
    out = capsys.readouterr().out
    assert "'/' becomes '_'" in out and "random" not in out


def test_run_says_which_inputs_are_random_and_summarises_outputs(slash_library, capsys):
    _, library = slash_library
    assert main(["run", library, "--repeat", "1", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "input x: random float32[2, 3] (standard normal, --seed 7" in out
    x = np.random.default_rng(7).standard_normal((2, 3)).astype(np.float32)
    relu = np.maximum(x, 0).reshape(-1)
    line = next(li for li in out.splitlines() if li.startswith("save_infer_model/scale_0:"))
    assert f"[{relu[0]:.6g}, {relu[1]:.6g}, {relu[2]:.6g}, {relu[3]:.6g}, ...]" in line
    assert f"min {relu.min():.6g} max {relu.max():.6g}" in line


@pytest.mark.parametrize("repeat", ["0", "-1"])
def test_run_refuses_repeat_below_one(slash_library, repeat, capsys):
    _, library = slash_library
    assert main(["run", library, "--repeat", repeat]) == 2
    assert f"--repeat {repeat}" in capsys.readouterr().err


# -- the emulator's sysroot: --sysroot or KILN_SYSROOT_<TRIPLE> ---------------------------

def test_emulator_sysroot_comes_from_the_flag_or_the_variable(tmp_path, monkeypatch):
    from kiln.runtime.emulate import EmulatorError, qemu_command, sysroot_variable
    from kiln.targets import get_target

    target = get_target("arm64")
    variable = sysroot_variable(target)
    assert variable == "KILN_SYSROOT_AARCH64_LINUX_GNU"
    if shutil.which(target.qemu) is None:
        pytest.skip(f"{target.qemu} is not installed")
    missing = tmp_path / "missing"
    with pytest.raises(EmulatorError, match=f"{missing}/lib.*--sysroot.*{variable}"):
        qemu_command(target, sysroot=str(missing))
    (tmp_path / "lib").mkdir()
    assert qemu_command(target, sysroot=str(tmp_path))[1:3] == ["-L", str(tmp_path)]
    monkeypatch.setenv(variable, str(tmp_path))
    assert qemu_command(target)[1:3] == ["-L", str(tmp_path)]
    with pytest.raises(EmulatorError, match=str(missing)):   # the flag wins
        qemu_command(target, sysroot=str(missing))


def test_run_refuses_sysroot_without_emulate(slash_library, tmp_path, capsys):
    _, library = slash_library
    assert main(["run", library, "--sysroot", str(tmp_path)]) == 2
    assert "--emulate" in capsys.readouterr().err


# -- dims: --dim with an unknown name, hints for free dims, inspect's labels -------------

def _reshape_by_input_model():
    """A Reshape whose shape is a graph input: compile needs --const for it."""
    return _model([helper.make_node("Reshape", ["x", "shape"], ["y"])],
                  [("x", TensorProto.FLOAT, [2, 6]), ("shape", TensorProto.INT64, [2])],
                  [("y", TensorProto.FLOAT)])


def _free_dims_model():
    """x has two unnamed dims; a has a dim named '?' (how some exporters write unknown)."""
    return _model([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["a"], ["b"])],
                  [("x", TensorProto.FLOAT, [None, None, 4]), ("a", TensorProto.FLOAT, ["?", 2])],
                  [("y", TensorProto.FLOAT), ("b", TensorProto.FLOAT)])


def _save(tmp_path, model, name: str) -> str:
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    return str(path)


def test_dim_with_an_unknown_name_is_refused_like_shape_and_const(tmp_path, capsys):
    path = _save(tmp_path, _conv_model(), "conv")
    assert main(["compile", path, "--dim", "N=1", "--dim", "nosuch=2",
                 "-o", str(tmp_path / "m.so")]) == 2
    err = capsys.readouterr().err
    assert "--dim names no dim of the model: nosuch" in err and "named dims: N" in err
    with pytest.raises(kiln.KilnError, match="no dim of the model: nosuch"):
        kiln.compile(_conv_model(), output=str(tmp_path / "m.so"), dims={"nosuch": 1})


def test_free_dims_hint_a_shape_each_not_one_dim_for_all(tmp_path):
    with pytest.raises(kiln.KilnError) as info:
        kiln.compile(_free_dims_model(), output=str(tmp_path / "m.so"))
    message = str(info.value)
    assert "--shape x=D0xD1x4" in message and "--shape a=D0x2" in message
    assert "--dim ?=" not in message


def test_a_named_dim_shared_by_inputs_is_one_line_with_every_place_it_appears(tmp_path):
    model = _model([helper.make_node("Add", ["a", "b"], ["c"])],
                   [("a", TensorProto.FLOAT, ["batch", 3]), ("b", TensorProto.FLOAT, ["batch", 3])],
                   [("c", TensorProto.FLOAT)])
    with pytest.raises(kiln.KilnError) as info:
        kiln.compile(model, output=str(tmp_path / "m.so"))
    assert "'batch' (input 'a' dim 0, input 'b' dim 0) has no value (pin it with --dim " \
           "batch=SIZE)" in str(info.value)


def test_free_dims_pinned_with_the_hinted_shapes_match_onnxruntime(compile_and_load):
    model = _free_dims_model()
    rng = np.random.default_rng(5)
    feed = {"x": rng.standard_normal((2, 3, 4)).astype(np.float32),
            "a": rng.standard_normal((5, 2)).astype(np.float32)}
    outputs = compile_and_load(model, shapes={"x": (2, 3, 4), "a": (5, 2)}).run(feed)
    for actual, expected in zip(outputs.values(), run_onnxruntime(model, feed)):
        assert_matches(actual, expected)


def test_inspect_tells_unnamed_dims_from_a_dim_named_question_mark(tmp_path, capsys):
    assert main(["inspect", _save(tmp_path, _free_dims_model(), "free")]) == 0
    out = capsys.readouterr().out
    assert "x: float[?, ?, 4]" in out and "a: float['?', 2]" in out
    assert "--shape x=D0xD1x4" in out and "unsupported: none" in out


def test_inspect_reports_what_compile_refuses_and_the_const_that_fixes_it(tmp_path, capsys):
    path = _save(tmp_path, _reshape_by_input_model(), "reshape")
    assert main(["inspect", path]) == 0
    inspected = capsys.readouterr().out
    assert "unsupported: 1" in inspected and "--const shape=VALUE" in inspected
    assert main(["compile", path, "-o", str(tmp_path / "m.so")]) == 2
    assert "--const shape=VALUE" in capsys.readouterr().err


def test_the_const_the_hint_names_compiles_and_matches_onnxruntime(compile_and_load):
    model = _reshape_by_input_model()
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    session = compile_and_load(model, consts={"shape": [3, 4]})
    (expected,) = run_onnxruntime(model, {"x": x, "shape": np.array([3, 4], np.int64)})
    assert_matches(session.run({"x": x})["y"], expected)


# -- kiln.compile's options: a misspelt one is a KilnError naming them; all documented ----

def test_a_misspelt_compile_option_names_the_right_one(tmp_path):
    from kiln.driver import COMPILE_OPTIONS, OptionError

    with pytest.raises(OptionError) as info:
        kiln.compile(_reshape_by_input_model(), output=str(tmp_path / "m.so"),
                     const={"shape": [3, 4]})
    message = str(info.value)
    assert "'const' (did you mean 'consts'?)" in message
    assert all(name in message for name in COMPILE_OPTIONS)


def test_every_compile_option_is_documented():
    from kiln.driver import COMPILE_OPTIONS

    missing = [name for name in COMPILE_OPTIONS if f" {name}:" not in kiln.compile.__doc__]
    assert not missing, f"kiln.compile's docstring does not describe {missing}"


# -- progress: one updating line per stage on a terminal, nothing on a pipe -------------

class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_compile_shows_its_stages_on_a_terminal_only(tmp_path, capsys, monkeypatch):
    path = _save(tmp_path, _conv_model(), "conv")
    argv = ["compile", path, "--dim", "N=1", "-o", str(tmp_path / "m.so")]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""   # not a terminal: quiet
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(argv) == 0
    shown = terminal.getvalue()
    stages = ["loading the model", "importing the graph", "running the passes",
              "generating the kernels", "with the C compiler"]
    assert all(stage in shown for stage in stages)
    assert shown.count("\n") == 0 and shown.endswith("\r\x1b[K")   # one line, cleared
