"""The artifact under stress: sessions of one artifact in parallel threads (C and Python), one
session run from two threads at once (refused, never wrong), use after destroy (refused),
valgrind on small artifacts, hostile arrays at the loader, corrupted artifacts, and NaN/Inf
passing through as ONNX Runtime passes them."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

import kiln
from kiln.compiler.errors import ArtifactError, InputError, KilnError
from kiln.runtime import load
from reference import assert_matches, run_onnxruntime
from test_hardening_hostile_names import hostile_model
from test_hardening_reproducible import conv_model

C_DIR = Path(__file__).resolve().parent / "c"


@pytest.fixture(scope="module")
def cc() -> str:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler on PATH")
    return compiler


@pytest.fixture(scope="module")
def conv_artifact(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("conv")
    return Path(kiln.compile(conv_model(), output=str(folder / "model.so")))


def _sessions_program(cc: str, library: Path) -> Path:
    exe = library.parent / "sessions"
    subprocess.run([cc, "-O1", "-g", "-std=c11", "-Wall", "-Wextra", "-Werror",
                    f"-I{library.parent}", str(C_DIR / "sessions.c"), "-o", str(exe),
                    f"-L{library.parent}", f"-l:{library.name}",
                    f"-Wl,-rpath,{library.parent}", "-pthread"], check=True)
    return exe


def _run(command, timeout=300) -> str:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result.stdout


def test_c_sessions_in_parallel_threads_match_one_session(cc, conv_artifact):
    exe = _sessions_program(cc, conv_artifact)
    assert _run([exe, "parallel", 8, 100]).endswith("ok\n")


def test_c_one_session_run_from_two_threads_is_refused_never_wrong(cc, conv_artifact):
    exe = _sessions_program(cc, conv_artifact)
    assert _run([exe, "shared", 500]).endswith("ok\n")


def test_c_use_after_destroy_is_refused(cc, conv_artifact):
    exe = _sessions_program(cc, conv_artifact)
    assert _run([exe, "destroyed"]).endswith("ok\n")


@pytest.mark.parametrize("make", [conv_model, hostile_model], ids=["conv", "hostile_names"])
def test_valgrind_reports_nothing(cc, make, tmp_path):
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        pytest.skip("valgrind is not installed")
    # valgrind implements no AVX-512: build for an AVX2 CPU it can run
    library = Path(kiln.compile(make(), output=str(tmp_path / "model.so"), cpu="haswell"))
    exe = _sessions_program(cc, library)
    for args in (["once"], ["parallel", "2", "3"]):
        result = subprocess.run([valgrind, "--error-exitcode=99", "--leak-check=full",
                                 "--errors-for-leak-kinds=definite", "-q", str(exe), *args],
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0 and result.stdout.endswith("ok\n"), result.stderr
        assert "Invalid" not in result.stderr and "uninitialised" not in result.stderr


def test_python_sessions_in_parallel_threads(conv_artifact):
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    (expected,) = run_onnxruntime(conv_model(), {"x": x})
    sessions = [load(conv_artifact, threads=2) for _ in range(4)]
    errors: list[BaseException] = []

    def work(session):
        try:
            for _ in range(50):
                assert_matches(session.run({"x": x})["y"], expected)
        except BaseException as exc:   # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in sessions:
        s.close()
    assert not errors, errors[0]


@pytest.fixture(scope="module")
def relu_session(tmp_path_factory):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    folder = tmp_path_factory.mktemp("relu")
    with load(kiln.compile(model, output=str(folder / "relu.so")), threads=1) as session:
        yield session


X = np.arange(-3, 3, dtype=np.float32).reshape(2, 3)


@pytest.mark.parametrize("array", [
    np.asfortranarray(X), X.T.copy().T, np.arange(-6, 6, dtype=np.float32).reshape(2, 6)[:, ::2],
    np.frombuffer(X.tobytes(), np.float32).reshape(2, 3)],
    ids=["fortran", "transposed_view", "strided", "read_only"])
def test_layouts_run_correctly(relu_session, array):
    np.testing.assert_array_equal(relu_session.run({"x": array})["y"], np.maximum(array, 0))


@pytest.mark.parametrize("value, words", [
    (X.astype(">f4"), "dtype"), (X.astype(np.float64), "dtype"), (X.tolist(), "dtype"),
    (X[:1], "shape"), (X.reshape(3, 2), "shape"), (np.float32(1), "shape"),
    (X.astype(np.int32), "astype"), ("not an array", "dtype")])
def test_wrong_arrays_are_refused(relu_session, value, words):
    with pytest.raises(InputError, match=words):
        relu_session.run({"x": value})


def test_extra_and_missing_inputs_in_one_error(relu_session):
    with pytest.raises(InputError, match="missing.*'x'.*unknown.*'z'"):
        relu_session.run({"z": X})


@pytest.mark.parametrize("cut", [0.02, 0.3, 0.7, 0.999])
def test_truncated_real_artifact(conv_artifact, tmp_path, cut):
    data = conv_artifact.read_bytes()
    broken = tmp_path / "broken.so"
    broken.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ArtifactError):
        load(broken)


@pytest.mark.parametrize("offset, what", [(4, "class"), (5, "endianness"), (18, "machine"),
                                          (0x28, "section table")])
def test_corrupted_elf_header(conv_artifact, tmp_path, offset, what):
    data = bytearray(conv_artifact.read_bytes())
    data[offset:offset + 8 if offset == 0x28 else offset + 1] = \
        b"\xff" * (8 if offset == 0x28 else 1)
    broken = tmp_path / "broken.so"
    broken.write_bytes(bytes(data))
    with pytest.raises(KilnError):
        load(broken)


NAN_INF = np.array([[np.nan, np.inf, -np.inf, 0.0], [-0.0, 1.5, -2.5, np.nan],
                    [np.inf, np.inf, 1.0, -1.0], [-np.inf, -np.inf, np.nan, 3.0]],
                   np.float32).reshape(1, 1, 4, 4)
NAN_INF_NODES = {
    "relu": [helper.make_node("Relu", ["x"], ["y"])],
    "add": [helper.make_node("Add", ["x", "x"], ["y"])],
    "maxpool": [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2])],
    "softmax": [helper.make_node("Softmax", ["x"], ["y"], axis=-1)],
    "sigmoid_mul": [helper.make_node("Sigmoid", ["x"], ["s"]),
                    helper.make_node("Mul", ["s", "x"], ["y"])],
}


#: ONNX leaves a NaN inside a MaxPool window unspecified, and ONNX Runtime's answer depends on
#: which of its kernels runs (its 2-D kernel may return NaN or not, by position): max pooling
#: is checked with Inf and -Inf only.
NO_NAN = {"maxpool"}


@pytest.mark.parametrize("case", sorted(NAN_INF_NODES))
def test_nan_and_inf_pass_through_as_onnx_runtime(case, compile_and_load):
    graph = helper.make_graph(NAN_INF_NODES[case], case,
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    x = np.nan_to_num(NAN_INF, nan=-7.0, posinf=np.inf, neginf=-np.inf) if case in NO_NAN \
        else NAN_INF
    (expected,) = run_onnxruntime(model, {"x": x})
    actual = compile_and_load(model).run({"x": x})["y"]
    assert_matches(actual, expected)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(actual), np.isposinf(expected))


def test_header_states_the_threading_contract(conv_artifact):
    header = conv_artifact.with_suffix(".h").read_text()
    assert "one run at a time per session" in header
    assert "may run in parallel threads" in header and "destroyed" in header


#: Functions a library linked into someone's process must not call.
FORBIDDEN_IMPORTS = {"abort", "exit", "_exit", "_Exit", "quick_exit", "printf", "fprintf",
                     "puts", "fputs", "fwrite", "putchar", "perror", "__assert_fail", "raise",
                     "signal", "sigaction"}


def test_artifact_never_prints_aborts_or_exits(conv_artifact):
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("needs readelf (binutils)")
    table = subprocess.run([readelf, "--dyn-syms", "-W", str(conv_artifact)],
                           capture_output=True, text=True, check=True).stdout
    imported = {line.split()[7].split("@")[0] for line in table.splitlines()
                if len(line.split()) >= 8 and line.split()[6] == "UND"}
    assert imported and not imported & FORBIDDEN_IMPORTS, imported & FORBIDDEN_IMPORTS
