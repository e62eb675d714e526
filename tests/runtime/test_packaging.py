"""Packaging of a compiled model: the static library (-o OUT.a), two models with different
symbol prefixes in one program (static and shared), and the CMake and pkg-config files
written beside the artifact, each program's output checked against ONNX Runtime."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import kiln
from reference import assert_matches, run_onnxruntime
from runtime_helpers import C_DIR, run_cmd

ROOT = Path(__file__).resolve().parents[2]


def _gemm_model() -> onnx.ModelProto:
    """A dense layer: Gemm + Relu, x [2, 4] -> y [2, 8]."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "W"),
               numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "B")]
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["h"], transB=1),
         helper.make_node("Relu", ["h"], ["y"])], "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _conv_model() -> onnx.ModelProto:
    """A tiny CNN: Conv 3x3 + Relu + GlobalAveragePool, x [1, 3, 8, 8] -> y [1, 4, 1, 1]."""
    rng = np.random.default_rng(1)
    weights = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
                                       "W")]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("GlobalAveragePool", ["r"], ["y"])], "convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 1, 1])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _pattern(shape) -> np.ndarray:
    """The inputs the C and C++ programs make: element i is ((7 i) % 17 - 8) / 8."""
    i = np.arange(int(np.prod(shape)))
    return (((i * 7) % 17 - 8) / 8).astype(np.float32).reshape(shape)


def _expected(model: onnx.ModelProto) -> np.ndarray:
    (x,) = model.graph.input
    shape = [d.dim_value for d in x.type.tensor_type.shape.dim]
    (y,) = run_onnxruntime(model, {x.name: _pattern(shape)})
    return y


def _printed(line: str) -> np.ndarray:
    return np.array([float(v) for v in line.split(":" if "=" not in line else "=")[1].split()],
                    dtype=np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, onnx.ModelProto]:
    return {"resnet_": _gemm_model(), "bert_": _conv_model()}


def test_output_suffix_chooses_the_library_kind(tmp_path):
    with pytest.raises(kiln.KilnError, match=r"must end in \.so .* or \.a"):
        kiln.compile(_gemm_model(), output=str(tmp_path / "model.dylib"))
    assert not (tmp_path / "model.h").exists()


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs nm (binutils)")
def test_static_library_defines_only_its_prefixed_api(tmp_path):
    library = Path(kiln.compile(_gemm_model(), output=str(tmp_path / "dense.a"),
                                prefix="dense_"))
    assert library.exists() and (tmp_path / "dense.h").exists()
    listing = run_cmd(["nm", "-g", "--defined-only", library]).stdout
    defined = [line.split()[-1] for line in listing.splitlines() if len(line.split()) == 3]
    assert "dense_session_create" in defined and "dense_manifest" in defined
    assert all(name.startswith("dense_") for name in defined), defined
    # the internals are there, as local symbols (a second model cannot clash with them)
    local = run_cmd(["nm", library]).stdout
    assert " d KILN_MODEL" in local and " r kiln_weights" in local


def test_static_library_is_inspected_and_refused_by_load(tmp_path):
    from kiln.runtime import load
    from kiln.runtime.manifest import read_manifest

    library = kiln.compile(_gemm_model(), output=str(tmp_path / "dense.a"), prefix="dense_")
    manifest = read_manifest(library)
    assert manifest["model"]["name"] == "dense" and manifest["options"]["prefix"] == "dense_"
    with pytest.raises(kiln.KilnError, match="static library .* compile it to a .so"):
        load(library)


@pytest.mark.parametrize("kind", ["a", "so"])
def test_two_models_link_into_one_program(cc, models, tmp_path, kind):
    for prefix, name in (("resnet_", "a"), ("bert_", "b")):
        kiln.compile(models[prefix], output=str(tmp_path / f"{name}.{kind}"), prefix=prefix)
    link = (["a.a", "b.a", "-pthread", "-lm"] if kind == "a" else
            ["-L.", "-l:a.so", "-l:b.so", "-Wl,-rpath,$ORIGIN"])
    run_cmd([cc, "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I.",
             C_DIR / "two_compiled_models.c", "-o", "two", *link], cwd=tmp_path)
    out = run_cmd(["./two"], cwd=tmp_path).stdout
    assert out.startswith("resnet model dense, bert model convnet"), out
    for prefix in models:
        line = next(l for l in out.splitlines() if l.startswith(f"{prefix[:-1]} y:"))
        expected = _expected(models[prefix])
        assert_matches(_printed(line).reshape(expected.shape), expected, what=prefix)
    if kind == "a" and shutil.which("ldd"):   # nothing but the C library at run time
        needed = run_cmd(["ldd", tmp_path / "two"]).stdout
        allowed = ("linux-vdso", "libc.so", "libm.so", "libpthread.so", "ld-linux")
        assert all(any(a in line for a in allowed) for line in needed.strip().splitlines())


def test_two_static_libraries_of_one_prefix_do_not_link(cc, models, tmp_path):
    """Same prefix, two models: each header refers to its own build's symbol, so both
    archives are pulled in and their C APIs collide (not the first answering for both)."""
    for prefix, name in (("resnet_", "a"), ("bert_", "b")):
        (tmp_path / name).mkdir()
        kiln.compile(models[prefix], output=str(tmp_path / name / "m.a"), prefix="same_")
    (tmp_path / "main.c").write_text('#include "a/m.h"\n#include "b/m.h"\n'
                                     "int main(void) { return same_num_inputs() != 1; }\n")
    result = subprocess.run([cc, "main.c", "-I.", "a/m.a", "b/m.a", "-pthread", "-lm"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0
    assert "multiple definition of `same_" in result.stderr, result.stderr


@pytest.mark.skipif(shutil.which("qemu-aarch64") is None or
                    not Path("/usr/aarch64-linux-gnu/lib").is_dir(),
                    reason="needs qemu-aarch64 and libc6-arm64-cross")
def test_arm64_static_library_links_with_zig(models, tmp_path):
    """A cross target's archive: zig's archiver, the hidden symbols made local on an aarch64
    object; the program links both models and runs under QEMU."""
    for prefix, name in (("resnet_", "a"), ("bert_", "b")):
        kiln.compile(models[prefix], target="arm64", output=str(tmp_path / f"{name}.a"),
                     prefix=prefix)
    run_cmd([sys.executable, "-m", "ziglang", "cc", "-target", "aarch64-linux-gnu.2.36",
             "-O2", "-std=c11", "-I.", C_DIR / "two_compiled_models.c", "a.a", "b.a",
             "-pthread", "-lm", "-o", "two"], cwd=tmp_path)
    out = run_cmd(["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", "./two"],
                  cwd=tmp_path).stdout
    for prefix in models:
        line = next(l for l in out.splitlines() if l.startswith(f"{prefix[:-1]} y:"))
        expected = _expected(models[prefix])
        assert_matches(_printed(line).reshape(expected.shape), expected, what=prefix)


def test_package_files_are_written_beside_the_artifact(tmp_path):
    kiln.compile(_gemm_model(), output=str(tmp_path / "model.a"))
    config = (tmp_path / "model-config.cmake").read_text()
    assert "add_library(model::model STATIC IMPORTED)" in config
    assert "${CMAKE_CURRENT_LIST_DIR}/model.a" in config
    pc = (tmp_path / "model.pc").read_text()
    assert "Libs: ${libdir}/model.a -pthread -lm" in pc and "Cflags: -I${includedir}" in pc


def test_a_model_name_cannot_write_into_the_package_files(tmp_path):
    """The graph's name is the model's text, not ours: a newline in it must not end the
    comment it is quoted in and leave a command behind in the CMake or pkg-config file."""
    model = _gemm_model()
    model.graph.name = 'g"\nmessage(FATAL_ERROR injected)\nLibs: -linjected'
    kiln.compile(model, output=str(tmp_path / "model.so"))
    for name in ("model-config.cmake", "model.pc"):
        for line in (tmp_path / name).read_text().splitlines():
            assert "injected" not in line or line.startswith(("#", "Description:")), line


@pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("c++") is None,
                    reason="needs cmake and a C++ compiler (apt-get install cmake g++)")
@pytest.mark.parametrize("kind", ["a", "so"])
def test_cmake_example_builds_against_the_package(tmp_path, kind):
    model = _conv_model()
    (tmp_path / "model").mkdir()
    kiln.compile(model, output=str(tmp_path / "model" / f"model.{kind}"))
    build = tmp_path / "app"
    run_cmd(["cmake", "-S", ROOT / "examples" / "cmake", "-B", build,
             f"-Dmodel_DIR={tmp_path / 'model'}"])
    run_cmd(["cmake", "--build", build])
    out = run_cmd([build / "run_model"]).stdout
    line = next(l for l in out.splitlines() if l.startswith("output y [1, 4, 1, 1] ="))
    expected = _expected(model)
    assert_matches(_printed(line).reshape(expected.shape), expected)


@pytest.mark.skipif(shutil.which("pkg-config") is None,
                    reason="needs pkg-config (apt-get install pkg-config)")
@pytest.mark.parametrize("kind", ["a", "so"])
def test_pkg_config_flags_build_the_c_example(cc, tmp_path, kind):
    model = _conv_model()
    kiln.compile(model, output=str(tmp_path / f"model.{kind}"))
    env = dict(os.environ, PKG_CONFIG_PATH=str(tmp_path))
    flags = run_cmd(["pkg-config", "--cflags", "--libs", "model"], env=env).stdout.split()
    assert f"-I{tmp_path}" in flags and str(tmp_path / f"model.{kind}") in flags
    program = tmp_path / "main"
    run_cmd([cc, "-O2", "-std=c11", ROOT / "examples" / "c" / "main.c", "-o", program, *flags])
    out = run_cmd([program, "1"], cwd="/").stdout
    line = next(l for l in out.splitlines() if l.startswith("output y: float32 [1, 4, 1, 1]"))
    expected = _expected(model)
    assert_matches(_printed(line).reshape(expected.shape), expected, rtol=1e-4, atol=1e-5)
