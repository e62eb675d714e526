"""The C side: the runtime compiles warning-free, the public API's statuses, two models in one
program, the thread pool, the artifact's dependencies, and the rendered public header."""

from __future__ import annotations

import shutil
import sys

import pytest

from kiln.compiler.errors import KilnError
from kiln.runtime import render_header
from kiln.runtime.build import INCLUDE_DIR, RUNTIME_SOURCES, runtime_cflags
from runtime_helpers import C_DIR, FAKE_SPEC, WARNINGS, build_model, build_program, run_cmd


@pytest.mark.parametrize("std", ["c11", "gnu11"])
def test_runtime_compiles_cleanly_with_gcc(cc, tmp_path, std):
    for src in RUNTIME_SOURCES:
        run_cmd([cc, f"-std={std}", "-O2", "-Wpedantic", *WARNINGS, *runtime_cflags(), "-c",
                 src, "-o", tmp_path / (src.stem + ".o")])


def _zig_available() -> bool:
    try:
        import ziglang  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _zig_available(), reason="needs zig (pip install ziglang) for clang")
@pytest.mark.parametrize("triple", ["x86_64-linux-gnu", "aarch64-linux-gnu", "riscv64-linux-gnu"])
def test_runtime_compiles_cleanly_with_clang(tmp_path, triple):
    for src in RUNTIME_SOURCES:
        run_cmd([sys.executable, "-m", "ziglang", "cc", "-target", triple, "-std=c11", "-O2",
                 "-Wpedantic", *WARNINGS, *runtime_cflags(), "-c", src,
                 "-o", tmp_path / (src.stem + ".o")])


@pytest.mark.skipif(not _zig_available(), reason="needs zig (pip install ziglang)")
@pytest.mark.parametrize("arch", ["aarch64", "riscv64"])
def test_thread_pool_on_foreign_cpus(tmp_path, arch):
    """The pool's atomics on weakly ordered CPUs: a static build run under QEMU user mode."""
    qemu = shutil.which(f"qemu-{arch}")
    if qemu is None:
        pytest.skip(f"needs qemu-{arch} (Debian package qemu-user)")
    exe = tmp_path / f"pool_test_{arch}"
    run_cmd([sys.executable, "-m", "ziglang", "cc", "-target", f"{arch}-linux-musl", "-static",
             "-O2", "-std=c11", *WARNINGS, "-pthread", f"-I{INCLUDE_DIR}", f"-I{C_DIR}",
             C_DIR / "pool_test.c", *RUNTIME_SOURCES, "-o", exe])
    assert run_cmd([qemu, exe, "5", "10"], timeout=300).stdout.count("checked runs") == 6


def test_c_api_statuses(cc, fake_so, tmp_path):
    exe = build_program(cc, [C_DIR / "check_api.c"], tmp_path / "check_api", libs=[fake_so],
                        include_dirs=[fake_so.parent, C_DIR])
    assert "all checks passed" in run_cmd([exe], timeout=120).stdout


def test_two_models_in_one_program(cc, tmp_path):
    a = build_model(cc, tmp_path, prefix="a_", name="a")
    b = build_model(cc, tmp_path, prefix="b_", name="b")
    exe = build_program(cc, [C_DIR / "two_models.c"], tmp_path / "two_models", libs=[a, b],
                        include_dirs=[tmp_path, C_DIR])
    assert "all checks passed" in run_cmd([exe], timeout=60).stdout


def test_thread_pool(cc, tmp_path):
    exe = build_program(cc, [C_DIR / "pool_test.c", *RUNTIME_SOURCES], tmp_path / "pool_test",
                        include_dirs=[INCLUDE_DIR, C_DIR])
    out = run_cmd([exe, "20"], timeout=300).stdout
    print(out)
    assert out.count("checked runs") == 6


@pytest.mark.skipif(shutil.which("ldd") is None, reason="needs ldd")
def test_artifact_depends_only_on_libc(fake_so):
    allowed = ("linux-vdso.so", "libc.so", "libm.so", "libpthread.so", "ld-linux")
    lines = [ln.strip() for ln in run_cmd(["ldd", fake_so]).stdout.splitlines() if ln.strip()]
    assert lines
    for line in lines:
        name = line.split()[0].rsplit("/", 1)[-1]
        assert name.startswith(allowed), f"unexpected dependency: {line}"


@pytest.mark.parametrize("prefix", ["kiln_", "mynet_", "ResNet18_v2_", "_x"])
def test_header_compiles(cc, tmp_path, prefix):
    header = tmp_path / "model.h"
    header.write_text(render_header(FAKE_SPEC, prefix))
    run_cmd([cc, "-std=c11", "-Wpedantic", *WARNINGS, "-fsyntax-only", "-x", "c", header])


@pytest.mark.skipif(shutil.which("c++") is None, reason="needs a C++ compiler (apt-get install "
                    "g++; CI installs it)")
@pytest.mark.parametrize("prefix", ["kiln_", "mynet_"])
def test_header_compiles_as_cpp(tmp_path, prefix):
    header = tmp_path / "model.h"
    header.write_text(render_header(FAKE_SPEC, prefix))
    run_cmd(["c++", "-std=c++11", *WARNINGS, "-fsyntax-only", "-x", "c++", header])


def test_header_matches_the_runtime(cc, tmp_path):
    """The rendered prototypes agree with the runtime's definitions (a conflict won't compile)."""
    header = tmp_path / "model.h"
    header.write_text(render_header(FAKE_SPEC, "mynet_"))
    run_cmd([cc, "-std=c11", *WARNINGS, *runtime_cflags("mynet_"), "-include", header,
             "-fsyntax-only", RUNTIME_SOURCES[0]])


def test_header_content():
    text = render_header(FAKE_SPEC, "mynet_", "fake.h")
    assert "mynet_session_run(kiln_session *session" in text
    assert "KILN_API" not in text and "KILN_EXPORT" not in text
    assert "#define MYNET_NUM_INPUTS 2" in text and "#define MYNET_NUM_OUTPUTS 2" in text
    assert "#define MYNET_WORKSPACE_SIZE 128u" in text
    assert '"x"      float32 (float)  [2, 3]  24 bytes' in text
    assert '"total"  int64 (int64_t)  []  8 bytes' in text
    assert "#ifndef KILN_ABI_V1_TYPES" in text and "#define KILN_ABI_VERSION 1u" in text


def test_header_comment_cannot_be_broken_by_names(cc, tmp_path):
    from kiln.compiler.dtypes import DType
    from kiln.runtime import ModelSpec, TensorSpec

    spec = ModelSpec("evil */ model", (TensorSpec.of("in*/put\n", DType.uint8, (1,)),),
                     (TensorSpec.of("out", DType.bool, (3,)),))
    header = tmp_path / "evil.h"
    header.write_text(render_header(spec))
    run_cmd([cc, "-std=c11", *WARNINGS, "-fsyntax-only", "-x", "c", header])


@pytest.mark.parametrize("prefix", ["", "1abc", "my-net", "a b"])
def test_bad_prefix(prefix):
    with pytest.raises(KilnError, match="not a valid C identifier prefix"):
        render_header(FAKE_SPEC, prefix)


def test_spec_checks_dtype_consistency():
    from kiln.runtime import TensorSpec

    with pytest.raises(ValueError, match="does not match"):
        TensorSpec("x", "float32", 7, (1,))
    assert TensorSpec("x", "int64", 7, [2, 3]).shape == (2, 3)


def test_python_and_c_agree_on_the_abi():
    import re

    from kiln.compiler.dtypes import DType
    from kiln.runtime import ABI_VERSION, Status
    from kiln.runtime.build import INCLUDE_DIR as runtime_dir

    text = (runtime_dir / "kiln_abi.h").read_text()
    assert re.search(r"#define KILN_ABI_VERSION (\d+)u", text).group(1) == str(ABI_VERSION)
    for status in Status:
        assert f"KILN_{status.name} = {status.value}," in text or \
            f"KILN_{status.name} = {status.value}\n" in text
    for dtype in DType:
        assert f"KILN_DTYPE_{dtype.name.upper()} = {dtype.value}" in text
