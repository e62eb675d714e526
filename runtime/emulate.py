"""Run an artifact built for another architecture under QEMU user mode.

A small driver program (kiln_emu_driver.c), built for the artifact's target with zig cc and
cached, dlopens the artifact inside `qemu-<arch>` and talks to this process over pipes: it
describes the model once, then runs it on each feed (see the protocol in the C file). The
EmulatedSession looks like a Session: same inputs/outputs, run(feed) -> numpy arrays.

Emulation is for correctness only: QEMU runs vector code element by element."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import threading
from pathlib import Path
from typing import Mapping

import numpy as np

from ..compiler.dtypes import DType, pack_array, unpack_array
from ..compiler.errors import ArtifactError, KilnError, RuntimeFailure
from .build import INCLUDE_DIR, RUNTIME_DIR
from .elf import ElfInfo
from .manifest import read_manifest
from .loader import Session, TensorInfo

DRIVER_SOURCE = RUNTIME_DIR / "kiln_emu_driver.c"
DEFAULT_VLEN = 256


class EmulatorError(KilnError, RuntimeError):
    """QEMU or the cross driver is missing, or the emulated process failed."""


def target_for(info: ElfInfo):
    """The Kiln target whose artifacts have this ELF architecture."""
    from ..targets import TARGETS

    for target in TARGETS.values():
        if target.elf_machine == info.arch and target.qemu:
            return target
    raise EmulatorError(f"Kiln cannot emulate {info.arch} artifacts; emulated targets: "
                        + ", ".join(t.name for t in TARGETS.values() if t.qemu))


def sysroot_variable(target) -> str:
    """The environment variable that names `target`'s sysroot, e.g.
    KILN_SYSROOT_AARCH64_LINUX_GNU: a user without root keeps the C library elsewhere."""
    return "KILN_SYSROOT_" + "".join(c if c.isalnum() else "_" for c in target.triple).upper()


def qemu_command(target, vlen: int | None = None, sysroot: str | None = None,
                 cpu: str | None = None) -> list[str]:
    """`qemu-<arch> -L sysroot [-cpu ...]` for `target`; EmulatorError naming the packages to
    install when QEMU or the target's libc is missing. `sysroot` (else the variable
    sysroot_variable names, else the target's /usr/<triple>) holds lib/ with its libc;
    `cpu` is a QEMU CPU model to emulate."""
    qemu = shutil.which(target.qemu)
    if qemu is None:
        raise EmulatorError(f"{target.qemu} is not installed; on Debian/Ubuntu: "
                            f"apt-get install qemu-user")
    variable = sysroot_variable(target)
    sysroot = sysroot or os.environ.get(variable) or target.qemu_sysroot
    if not Path(sysroot, "lib").is_dir():
        package = {"aarch64": "libc6-arm64-cross", "riscv64": "libc6-riscv64-cross"}.get(
            target.elf_machine, f"the {target.elf_machine} C library")
        raise EmulatorError(f"{target.qemu} needs the target's C library in {sysroot}/lib; "
                            f"on Debian/Ubuntu: apt-get install {package}, or point "
                            f"--sysroot (or {variable}) at a folder that has it")
    command = [qemu, "-L", sysroot]
    if cpu is not None:
        if vlen is not None:
            raise EmulatorError("give vlen= or cpu=, not both")
        command += ["-cpu", cpu]
    elif target.qemu_cpu:
        bits = vlen or DEFAULT_VLEN
        if bits < 128 or bits & (bits - 1):
            raise EmulatorError(f"vlen={bits}: RVV needs a power of two >= 128")
        command += ["-cpu", target.qemu_cpu.format(vlen=bits)]
    elif vlen is not None:
        raise EmulatorError(f"vlen= applies to RISC-V vector targets, not {target.name}")
    return command


def driver_for(target) -> Path:
    """The emulation driver built for `target` (cached under the user's cache folder)."""
    from ..targets.toolchain import compiler_command, run_compiler, zig_cache_dir

    compiler = compiler_command(target, None, target.baseline_cpu or None)
    source = DRIVER_SOURCE.read_bytes() + (INCLUDE_DIR / "kiln_abi.h").read_bytes()
    flags = " ".join(compiler[1:]) + target.zig_target
    digest = hashlib.sha256(source + flags.encode()).hexdigest()[:16]
    folder = zig_cache_dir().parent / "emulate"
    path = folder / f"kiln_emu_driver-{target.name}-{digest}"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".tmp{threading.get_ident()}")
    run_compiler([*compiler, "-O2", "-std=gnu11", f"-I{INCLUDE_DIR}", str(DRIVER_SOURCE),
                  "-o", str(partial)], folder, "the emulation driver")
    partial.replace(path)
    return path


class EmulatedSession(Session):
    """A Session whose artifact runs in a QEMU user-mode process (see the module doc)."""

    def __init__(self, path, info: ElfInfo, prefix: str, threads: int,
                 vlen: int | None = None, sysroot: str | None = None,
                 cpu: str | None = None):
        self._handle = None
        self._process = None
        self._shapes: list[tuple[int, ...]] | None = None   # actual dims of the last run
        self.path = str(path)
        self.prefix = prefix
        self.target = target_for(info)
        command = [*qemu_command(self.target, vlen, sysroot, cpu),
                   str(driver_for(self.target)),
                   str(Path(self.path).resolve()), prefix, str(threads)]
        self._lock = threading.Lock()
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._handle = self._process
        try:
            if self._read(8) != b"KILNEMU1":
                raise self._failure("starting the emulated driver")
            self.name = self._read_str()
            self.workspace_size = self._unpack("<Q")
            n_in, n_out = self._unpack("<i"), self._unpack("<i")
            self.inputs = [self._read_tensor() for _ in range(n_in)]
            self.outputs = [self._read_tensor() for _ in range(n_out)]
            status = self._unpack("<i")
            if status != 0:
                text = self._read_str()
                raise RuntimeFailure(f"{self.path}: creating a session failed under "
                                     f"emulation ({text}): {self._read_str()}")
        except BaseException:
            self.close()
            raise

    @property
    def manifest(self) -> dict | None:
        """The artifact's manifest, read from its ELF section (no need to ask the driver)."""
        return read_manifest(self.path)

    def _read(self, n: int) -> bytes:
        data = self._process.stdout.read(n) if n else b""
        if len(data) != n:
            raise self._failure("talking to the emulated driver")
        return data

    def _unpack(self, fmt: str):
        return struct.unpack(fmt, self._read(struct.calcsize(fmt)))[0]

    def _read_str(self) -> str:
        return self._read(self._unpack("<I")).decode("utf-8", "surrogateescape")

    def _read_tensor(self) -> TensorInfo:
        name = self._read_str()
        code, rank = self._unpack("<i"), self._unpack("<i")
        shape = tuple(self._unpack("<q") for _ in range(rank))
        try:
            dtype = DType.from_onnx(code).numpy
        except ValueError:
            raise ArtifactError(f"{self.path}: a tensor has unknown dtype code {code}") from None
        return TensorInfo(name, np.dtype(dtype), shape, self._unpack("<Q"))

    def _failure(self, doing: str) -> EmulatorError:
        process = self._process
        try:
            process.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        text = process.stderr.read().decode("utf-8", "replace").strip()[-2000:]
        code = process.returncode
        signal = f" (signal {-code})" if code < 0 else ""
        return EmulatorError(f"{self.path}: {doing} failed under {self.target.qemu}: the "
                             f"emulated process exited with status {code}{signal}: "
                             f"{text or 'no message'}")

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model in the emulator; returns {output name: array} in output order."""
        arrays = self._check_feed(feed)
        with self._lock:
            if self._handle is None:
                raise RuntimeFailure(f"{self.path}: the session is closed")
            try:
                self._process.stdin.write(b"R" + b"".join(
                    pack_array(a, DType.from_numpy(a.dtype)).tobytes() for a in arrays))
                self._process.stdin.flush()
            except (OSError, ValueError):
                raise self._failure("sending inputs") from None
            status = self._unpack("<i")
            if status != 0:
                text = self._read_str()
                raise RuntimeFailure(f"{self.path}: running failed under emulation "
                                     f"({text}): {self._read_str()}")
            result = {}
            for t in self.outputs:
                data = self._read(t.nbytes)
                shape = tuple(self._unpack("<q") for _ in t.shape)
                array = unpack_array(np.frombuffer(data, np.uint8), DType.from_numpy(t.dtype),
                                     t.shape).copy()
                if shape != t.shape:   # a data-dependent output: its compact leading part
                    array = array.reshape(-1)[:int(np.prod(shape, dtype=np.int64))]
                result[t.name] = array.reshape(shape)
            self._shapes = [a.shape for a in result.values()]
            return result

    def output_shape(self, index: int) -> tuple[int, ...]:
        """Output `index`'s actual shape in the last run (before one: its declared shape)."""
        return self.outputs[index].shape if self._shapes is None else self._shapes[index]

    def close(self) -> None:
        """Stop the emulated process. Idempotent."""
        process, self._handle, self._process = self._process, None, None
        if process is None:
            return
        try:
            if process.poll() is None:
                process.stdin.write(b"Q")
                process.stdin.close()
                process.wait(timeout=30)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        finally:
            for stream in (process.stdin, process.stdout, process.stderr):
                try:
                    stream.close()
                except OSError:
                    pass

    def __repr__(self) -> str:
        return super().__repr__().replace("<kiln Session", f"<kiln EmulatedSession "
                                          f"({self.target.qemu})", 1)
