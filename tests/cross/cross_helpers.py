"""Helpers of the cross-target tests: what they need installed, and compile-then-emulate."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import kiln
from kiln.runtime import load
from kiln.targets import get_target

CROSS_TARGETS = ["arm64", "riscv64-rvv"]
EMITS = ["c", "llvm"]
#: Debian 12 packages that provide each target's emulator, libc and objdump (.ci/run installs
#: them).
PACKAGES = {"aarch64": "qemu-user libc6-arm64-cross binutils-aarch64-linux-gnu",
            "riscv64": "qemu-user libc6-riscv64-cross binutils-riscv64-linux-gnu"}


def have_zig() -> bool:
    try:
        import ziglang  # noqa: F401
    except ImportError:
        return False
    return True


def require_emulator(target_name: str) -> None:
    """Skip (naming the packages) when QEMU or the target's libc is not installed."""
    target = get_target(target_name)
    if not have_zig():
        pytest.skip("needs zig: pip install ziglang")
    if shutil.which(target.qemu) is None or not Path(target.qemu_sysroot, "lib").is_dir():
        pytest.skip(f"needs {target.qemu} and the target libc: apt-get install "
                    f"{PACKAGES[target.elf_machine]}")


def objdump(target_name: str, library: Path) -> str:
    """The disassembly of `library` by the target's binutils objdump (skip if missing)."""
    arch = get_target(target_name).elf_machine
    tool = shutil.which(f"{arch}-linux-gnu-objdump")
    if tool is None:
        pytest.skip(f"needs {arch}-linux-gnu-objdump: apt-get install binutils-{arch}-linux-gnu")
    result = subprocess.run([tool, "-d", "--no-show-raw-insn", str(library)],
                            capture_output=True, text=True, check=True)
    return result.stdout


def qemu_version(target_name: str) -> tuple[int, ...]:
    """The version of the target's qemu-user, e.g. (7, 2, 0)."""
    out = subprocess.run([get_target(target_name).qemu, "--version"], capture_output=True,
                         text=True).stdout
    match = re.search(r"version (\d+)\.(\d+)", out)
    return tuple(int(g) for g in match.groups()) if match else (0, 0)


def skip_known_qemu_bugs(target_name: str, library: Path) -> None:
    """QEMU 7.2 (Debian 12) aborts translating RVV's round-toward-zero conversions
    (vfcvt.rtz.*, vfncvt.rtz.*, vfwcvt.rtz.*: valid RVV 1.0, fixed in QEMU 8): skip
    artifacts that use them there."""
    if get_target(target_name).elf_machine != "riscv64" or qemu_version(target_name) >= (8,):
        return
    if re.search(r"\bvf[nw]?cvt\.rtz\.", objdump(target_name, library)):
        pytest.skip("QEMU < 8 aborts on RVV vf[n|w]cvt.rtz.* (assertion in decode_save_opc)")


def compile_cross(model, target: str, emit: str, folder: Path, name: str = "model",
                  **options) -> Path:
    """Compile `model` for `target` with renderer `emit` into folder/name.so."""
    output = folder / f"{name}-{target}-{emit}.so"
    kiln.compile(model, target=target, output=str(output), emit=emit, **options)
    return output


def run_emulated(library: Path, feed: dict, threads: int = 2, **options) -> dict:
    """Run `library` once under QEMU; {output name: array}."""
    with load(library, threads=threads, emulator="qemu", **options) as session:
        return session.run(feed)


def small_model() -> onnx.ModelProto:
    """y = relu(conv(x, w) + b) * s: a conv, a broadcast and a fused epilogue."""
    rng = np.random.default_rng(1)
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3],
                           rng.standard_normal(108).astype(np.float32))
    s = helper.make_tensor("s", TensorProto.FLOAT, [1, 4, 1, 1], [0.5, 1.5, -1.0, 2.0])
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Mul", ["r", "s"], ["y"])]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 9, 11])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 4, 9, 11])], [w, s])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
