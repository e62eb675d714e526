"""Load a compiled model (.so) into this process and run it on numpy arrays.

    with kiln.runtime.load("model.so", threads=2) as session:
        outputs = session.run({"x": x})

Before dlopen the file is checked with a small ELF reader (a broken file or a foreign
architecture is refused with a clear ArtifactError); then the ABI version is compared, and
every feed is validated against the model's inputs (names, dtypes, shapes; nothing is cast)."""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..compiler.dtypes import DType, pack_array, unpack_array
from ..compiler.errors import ArtifactError, InputError, KilnError, RuntimeFailure
from .abi import ABI_VERSION, Status, check_prefix
from .elf import ET_DYN, host_arch, host_arch_name, read_elf
from .manifest import parse_manifest

EMULATORS = ("qemu",)


class _TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int32), ("rank", ctypes.c_int32),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("nbytes", ctypes.c_size_t)]


class _Options(ctypes.Structure):
    _fields_ = [("abi_version", ctypes.c_uint32), ("num_threads", ctypes.c_int32),
                ("workspace", ctypes.c_void_p), ("workspace_size", ctypes.c_size_t)]


_P = ctypes.c_void_p
_PP = ctypes.POINTER(ctypes.c_void_p)
_I32 = ctypes.c_int32
# function -> (restype, argtypes), without the prefix
#: absolute path -> (device, inode, mtime) of the file dlopen loaded under that name
_OPENED: dict[str, tuple[int, int, int]] = {}
_OPENED_LOCK = threading.Lock()


def _open_library(path: str) -> ctypes.CDLL:
    """dlopen `path`, the file there now. dlopen answers a name it has loaded before with the
    library already in the process, so an artifact rebuilt at the same path (a notebook's
    compile-load-edit loop, a server reloading a version) would run the old code: a changed
    file is opened through a fresh hard link (a copy across file systems), removed once
    loaded."""
    info = os.stat(path)
    identity = (info.st_dev, info.st_ino, info.st_mtime_ns)
    with _OPENED_LOCK:
        first = _OPENED.setdefault(path, identity)
    if first == identity:
        return ctypes.CDLL(path)
    folder = tempfile.mkdtemp(prefix="kiln-reload-")
    alias = os.path.join(folder, os.path.basename(path))
    try:
        try:
            os.link(path, alias)
        except OSError:
            shutil.copyfile(path, alias)
        return ctypes.CDLL(alias)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_SIGNATURES = {
    "abi_version": (ctypes.c_uint32, []),
    "model_name": (ctypes.c_char_p, []),
    "num_inputs": (_I32, []),
    "num_outputs": (_I32, []),
    "input_info": (_I32, [_I32, ctypes.POINTER(_TensorInfo)]),
    "output_info": (_I32, [_I32, ctypes.POINTER(_TensorInfo)]),
    "workspace_size": (ctypes.c_size_t, []),
    "options_init": (None, [ctypes.POINTER(_Options)]),
    "session_create": (_I32, [ctypes.POINTER(_Options), ctypes.POINTER(_P)]),
    "session_run": (_I32, [_P, _PP, _PP]),
    "session_destroy": (_I32, [_P]),
    "last_error": (ctypes.c_char_p, []),
    "status_string": (ctypes.c_char_p, [_I32]),
}
# optional: artifacts built before it was added lack it (all their outputs are static)
_OPTIONAL = {"output_shape": (_I32, [_P, _I32, ctypes.POINTER(ctypes.c_int64)]),
             "manifest": (ctypes.c_char_p, [])}


@dataclass(frozen=True)
class TensorInfo:
    """An input or output of a compiled model."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    nbytes: int

    def __str__(self) -> str:
        return f"{self.name}: {self.dtype} {self.shape}"


def load(path, threads: int | None = None, emulator: str | None = None,
         prefix: str | None = None, vlen: int | None = None,
         sysroot: str | None = None, cpu: str | None = None) -> "Session":
    """Load the compiled model at `path` and create a session with `threads` threads
    (None: one per CPU). `prefix` is the artifact's symbol prefix, found in the file if None.
    emulator="qemu" runs a foreign-architecture artifact under QEMU user mode (`vlen`: the
    emulated RISC-V vector length in bits, default 256; `sysroot`: the folder with the
    target's C library, default $KILN_SYSROOT_<TRIPLE> or /usr/<triple>), or this machine's
    on another CPU model (`cpu`, a QEMU CPU name such as "Haswell": does it start there?)."""
    if emulator is not None:
        from .emulate import EmulatedSession

        info = _check_architecture(os.fspath(path), emulator, other_cpu=cpu is not None)
        found = _find_prefix(os.fspath(path), info.exported_functions) if prefix is None \
            else check_prefix(prefix)
        return EmulatedSession(path, info, found, _check_threads(threads), vlen=vlen,
                               sysroot=sysroot, cpu=cpu)
    if cpu is not None:
        raise KilnError("cpu= names the CPU QEMU emulates: pass emulator='qemu' too")
    return Session(path, threads=threads, emulator=emulator, prefix=prefix)


def _check_architecture(path: str, emulator: str | None, other_cpu: bool = False):
    info = read_elf(path)
    if info.elf_type != ET_DYN:
        raise ArtifactError(f"{path} is an ELF file but not a shared library (e_type "
                            f"{info.elf_type}); pass the .so that `kiln compile` wrote")
    if emulator is not None and emulator not in EMULATORS:
        raise KilnError(f"unknown emulator {emulator!r}; the choices are: "
                        + ", ".join(EMULATORS))
    machine, bits, little = host_arch()
    foreign = (info.machine, info.bits, info.little_endian) != (machine, bits, little)
    if emulator is not None:
        if not foreign and not other_cpu:
            raise KilnError(f"{path} is built for this machine ({info.arch}): load it "
                            f"without emulator=")
        return info
    if foreign:
        endian = "" if info.little_endian == little else (
            " big-endian" if not info.little_endian else " little-endian")
        raise ArtifactError(
            f"{path} is built for {info.arch} ({info.bits}-bit{endian}) but this machine is "
            f"{host_arch_name()}, so it cannot be loaded here; run it under emulation with "
            f"load(path, emulator='qemu') (`kiln run --emulate`), or compile the model with "
            f"--target host")
    return info


def _find_prefix(path: str, exported: tuple[str, ...]) -> str:
    names = set(exported)
    prefixes = {n[:-len("abi_version")] for n in names if n.endswith("abi_version")}
    found = sorted(p for p in prefixes if p + "session_run" in names)
    if not found:
        raise ArtifactError(f"{path} is not a Kiln artifact: it exports no "
                            "<prefix>abi_version / <prefix>session_run functions")
    if len(found) > 1:
        raise ArtifactError(f"{path} exports several Kiln models (symbol prefixes "
                            f"{', '.join(found)}); choose one with load(path, prefix=...)")
    return found[0]


class Session:
    """A loaded model with its C session (threads and arena). One run at a time: concurrent
    calls to run() from several Python threads are serialized."""

    def __init__(self, path, threads: int | None = None, emulator: str | None = None,
                 prefix: str | None = None):
        self._handle = None
        self.path = os.fspath(path)
        info = _check_architecture(self.path, emulator)
        self.prefix = (_find_prefix(self.path, info.exported_functions) if prefix is None
                       else check_prefix(prefix))
        num_threads = _check_threads(threads)
        self._lib = self._bind(self.path, self.prefix)
        self.name = self._lib["model_name"]().decode("utf-8", "surrogateescape")
        self.inputs = self._describe("input")
        self.outputs = self._describe("output")
        self.workspace_size = int(self._lib["workspace_size"]())
        # Kiln dtypes, worked out once for run(): sub-byte ones are packed in the buffers
        self._in_types = [DType.from_numpy(t.dtype) for t in self.inputs]
        self._out_types = [DType.from_numpy(t.dtype) for t in self.outputs]
        self._in_ptrs = ctypes.c_void_p * max(len(self.inputs), 1)
        self._out_ptrs = ctypes.c_void_p * max(len(self.outputs), 1)
        self._lock = threading.Lock()
        options = _Options()
        self._lib["options_init"](ctypes.byref(options))
        options.num_threads = num_threads
        handle = ctypes.c_void_p()
        self._check(self._lib["session_create"](ctypes.byref(options), ctypes.byref(handle)),
                    "creating a session")
        self._handle = handle

    @staticmethod
    def _bind(path: str, prefix: str) -> dict:
        try:
            lib = _open_library(os.path.abspath(path))   # a bare name would search LD paths
        except OSError as exc:
            raise ArtifactError(f"cannot load {path}: {exc}") from exc
        functions = {}
        for name, (restype, argtypes) in _SIGNATURES.items():   # abi_version comes first
            try:
                fn = getattr(lib, prefix + name)
            except AttributeError:
                raise ArtifactError(f"{path} lacks the function {prefix}{name}: it is not a "
                                    f"Kiln artifact with symbol prefix {prefix!r}") from None
            fn.restype, fn.argtypes = restype, argtypes
            functions[name] = fn
            if name == "abi_version" and fn() != ABI_VERSION:
                raise ArtifactError(f"{path} uses Kiln ABI version {fn()} but this loader "
                                    f"speaks version {ABI_VERSION}; compile the model again "
                                    "with this version of Kiln")
        for name, (restype, argtypes) in _OPTIONAL.items():
            fn = getattr(lib, prefix + name, None)
            if fn is not None:
                fn.restype, fn.argtypes = restype, argtypes
                functions[name] = fn
        functions["_cdll"] = lib   # keeps the library loaded while the session lives
        return functions

    @property
    def manifest(self) -> dict | None:
        """What the artifact says it is (runtime/manifest.py), from its C API; None for an
        artifact built before manifests."""
        if "manifest" not in self._lib:
            return None
        return parse_manifest(self._lib["manifest"](), self.path)

    def _describe(self, kind: str) -> list[TensorInfo]:
        count = self._lib[f"num_{kind}s"]()
        result = []
        for i in range(count):
            raw = _TensorInfo()
            self._check(self._lib[f"{kind}_info"](i, ctypes.byref(raw)), f"querying {kind} {i}")
            try:
                dtype = DType.from_onnx(raw.dtype).numpy
            except ValueError:
                raise ArtifactError(f"{self.path}: {kind} {i} has unknown dtype code "
                                    f"{raw.dtype}") from None
            shape = tuple(int(raw.shape[k]) for k in range(raw.rank))
            name = raw.name.decode("utf-8", "surrogateescape")   # the model's bytes, exactly
            result.append(TensorInfo(name, dtype, shape, int(raw.nbytes)))
        return result

    def _check(self, status: int, doing: str) -> None:
        if status == Status.OK:
            return
        text = self._lib["status_string"](status).decode()
        detail = self._lib["last_error"]().decode("utf-8", "replace")
        raise RuntimeFailure(f"{self.path}: {doing} failed ({text}): {detail}")

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model; returns {output name: array} in the model's output order."""
        arrays = [pack_array(a, dtype) if dtype.is_packed else a
                  for a, dtype in zip(self._check_feed(feed), self._in_types)]
        buffers = [np.empty(t.shape, t.dtype) if not dtype.is_packed
                   else np.empty(max(t.nbytes, 1), np.uint8)
                   for t, dtype in zip(self.outputs, self._out_types)]
        inputs = self._in_ptrs(*[a.ctypes.data for a in arrays])
        outputs = self._out_ptrs(*[a.ctypes.data for a in buffers])
        with self._lock:
            if self._handle is None:
                raise RuntimeFailure(f"{self.path}: the session is closed")
            self._check(self._lib["session_run"](self._handle, inputs, outputs), "running")
            shapes = [self.output_shape(i) for i in range(len(self.outputs))]
        return {t.name: _trimmed(buffer, shape) if not dtype.is_packed
                else unpack_array(buffer, dtype, t.shape)
                for t, dtype, buffer, shape in zip(self.outputs, self._out_types, buffers,
                                                   shapes)}

    def output_shape(self, index: int) -> tuple[int, ...]:
        """Output `index`'s actual shape in the last run (its declared shape if static)."""
        t = self.outputs[index]
        if "output_shape" not in self._lib or not t.shape:
            return t.shape
        dims = (ctypes.c_int64 * len(t.shape))()
        self._check(self._lib["output_shape"](self._handle, index, dims),
                    f"querying the shape of output {index}")
        return tuple(int(d) for d in dims)

    def _check_feed(self, feed) -> list[np.ndarray]:
        if not isinstance(feed, Mapping):
            raise InputError(f"run() takes a dict of input name -> numpy array, got "
                             f"{type(feed).__name__}; expected {self._signature()}")
        problems = []
        expected = {t.name for t in self.inputs}
        missing = [t.name for t in self.inputs if t.name not in feed]
        unknown = [name for name in feed if name not in expected]
        if missing:
            problems.append("missing input(s): " + ", ".join(repr(n) for n in missing))
        if unknown:
            problems.append("unknown input name(s): " + ", ".join(repr(n) for n in unknown))
        arrays = []
        for t in self.inputs:
            if t.name not in feed:
                continue
            a = np.asarray(feed[t.name])
            if a.dtype != t.dtype:
                problems.append(f"input {t.name!r}: expected dtype {t.dtype}, got {a.dtype} "
                                f"(Kiln does not cast: convert it with .astype(np.{t.dtype}))")
            elif a.shape != t.shape:
                problems.append(f"input {t.name!r}: expected shape {t.shape}, got {a.shape}")
            arrays.append(np.require(a, requirements=["C_CONTIGUOUS", "ALIGNED"]))
        if problems:
            raise InputError("; ".join(problems) + f"; the model expects {self._signature()}")
        return arrays

    def _signature(self) -> str:
        return "{" + ", ".join(f"'{t.name}': {t.dtype} {t.shape}" for t in self.inputs) + "}"

    def close(self) -> None:
        """Destroy the C session (threads, arena). Idempotent."""
        if self._handle is None:
            return
        with self._lock:
            handle, self._handle = self._handle, None
            if handle is not None:
                self._lib["session_destroy"](handle)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: ctypes may already be gone
            pass

    def __repr__(self) -> str:
        ins = ", ".join(map(str, self.inputs))
        outs = ", ".join(map(str, self.outputs))
        return f"<kiln Session {self.name!r} from {self.path}: ({ins}) -> ({outs})>"


def _trimmed(buffer: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The compact leading part of an upper-bound buffer, with the actual `shape`."""
    if buffer.shape == shape:
        return buffer
    return buffer.reshape(-1)[:int(np.prod(shape, dtype=np.int64))].reshape(shape)


def _check_threads(threads) -> int:
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise InputError(f"threads must be a positive integer or None (one per CPU), "
                         f"got {threads!r}")
    return int(threads)
