"""What load() refuses before (or instead of) running: broken files, foreign architectures,
other ABI versions, files that are not Kiln artifacts."""

from __future__ import annotations

import struct
import sys

import pytest

from kiln.compiler.errors import ArtifactError, KilnError
from kiln.runtime import load
from kiln.runtime.elf import host_arch_name, read_elf
from runtime_helpers import run_cmd


def test_elf_reader_lists_the_api(fake_so):
    info = read_elf(fake_so)
    assert info.arch == host_arch_name() and info.elf_type == 3
    assert {"kiln_abi_version", "kiln_session_run", "kiln_last_error"} <= set(
        info.exported_functions)
    # only the prefixed API is exported: the runtime's internals are hidden
    assert all(name.startswith("kiln_") for name in info.exported_functions)
    assert "kiln_parallel_for" not in info.exported_functions


def test_missing_file(tmp_path):
    with pytest.raises(ArtifactError, match="cannot read"):
        load(tmp_path / "nope.so")


@pytest.mark.parametrize("content", [b"", b"hello, I am not a library\n", b"\x7fEL"])
def test_not_elf(tmp_path, content):
    path = tmp_path / "model.so"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match="not an ELF shared library"):
        load(path)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_truncated(fake_so, tmp_path, keep):
    data = fake_so.read_bytes()
    path = tmp_path / "cut.so"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ArtifactError, match="truncated"):
        load(path)


def test_header_only(fake_so, tmp_path):
    path = tmp_path / "cut.so"
    path.write_bytes(fake_so.read_bytes()[:20])
    with pytest.raises(ArtifactError, match="truncated"):
        load(path)


def patched(src, dst, offset: int, fmt: str, value: int):
    data = bytearray(src.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.skipif(host_arch_name() != "x86_64", reason="patches an x86-64 artifact")
def test_foreign_architecture(fake_so, tmp_path):
    path = patched(fake_so, tmp_path / "arm.so", 18, "<H", 183)   # e_machine = EM_AARCH64
    with pytest.raises(ArtifactError) as err:
        load(path)
    msg = str(err.value)
    assert "aarch64" in msg and "x86_64" in msg and "emulator='qemu'" in msg


@pytest.mark.skipif(host_arch_name() != "x86_64", reason="patches an x86-64 artifact")
def test_foreign_architecture_riscv(fake_so, tmp_path):
    path = patched(fake_so, tmp_path / "rv.so", 18, "<H", 243)
    with pytest.raises(ArtifactError, match="built for riscv64 .* this machine is x86_64"):
        load(path)


def test_not_a_shared_library(cc, tmp_path):
    src = tmp_path / "f.c"
    src.write_text("int f(void) { return 1; }\n")
    run_cmd([cc, "-c", src, "-o", tmp_path / "f.o"])
    with pytest.raises(ArtifactError, match="not a shared library"):
        load(tmp_path / "f.o")


def test_not_a_kiln_artifact(cc, tmp_path):
    src = tmp_path / "lib.c"
    src.write_text("int answer(void) { return 42; }\n")
    run_cmd([cc, "-shared", "-fPIC", src, "-o", tmp_path / "lib.so"])
    with pytest.raises(ArtifactError, match="not a Kiln artifact"):
        load(tmp_path / "lib.so")


def test_other_abi_version(cc, tmp_path):
    src = tmp_path / "v2.c"
    src.write_text("unsigned kiln_abi_version(void) { return 2; }\n"
                   "int kiln_session_run(void) { return 0; }\n")
    run_cmd([cc, "-shared", "-fPIC", src, "-o", tmp_path / "v2.so"])
    with pytest.raises(ArtifactError, match="ABI version 2 but this loader speaks version 1"):
        load(tmp_path / "v2.so")


def test_emulator_refuses_a_native_artifact(fake_so):
    with pytest.raises(KilnError, match="without emulator="):
        load(fake_so, emulator="qemu")
    with pytest.raises(KilnError, match="unknown emulator 'bochs'"):
        load(fake_so, emulator="bochs")


ZIG = [sys.executable, "-m", "ziglang"]


def have_zig() -> bool:
    try:
        import ziglang  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not have_zig(), reason="needs zig (pip install ziglang) to cross-compile")
@pytest.mark.parametrize("triple, arch", [("aarch64-linux-gnu", "aarch64"),
                                          ("riscv64-linux-gnu", "riscv64")])
def test_real_cross_compiled_artifact(tmp_path, triple, arch):
    from runtime_helpers import FAKE_MODEL_C
    from kiln.runtime.build import RUNTIME_SOURCES, runtime_cflags, runtime_ldflags

    so = tmp_path / f"fake-{arch}.so"
    run_cmd([*ZIG, "cc", "-target", triple, "-O2", "-Wall", "-Wextra", "-Werror",
             *runtime_cflags(), FAKE_MODEL_C, *RUNTIME_SOURCES, *runtime_ldflags(), "-o", so])
    assert read_elf(so).arch == arch
    if arch != host_arch_name():
        with pytest.raises(ArtifactError, match=f"built for {arch}"):
            load(so)
