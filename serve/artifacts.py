"""A model version's artifacts: found in its folder, or compiled from its model.onnx into
the cache; and the checks that a batching version's artifacts are one model at several
batch sizes.

    VERSION/model.so               a Kiln artifact, served as it is
    VERSION/model.b{N}.so          with max_batch_size: the same model compiled for batch N
    VERSION/model.onnx             compiled on load (with max_batch_size: once per batch size
                                   the batcher runs, its symbolic leading dim set to each)

Compiled models are cached under the hash of the file's content, the compile options, the
Kiln version and the machine, so a restart does not compile them again and an edit does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import re
import shutil
import threading
from pathlib import Path
from typing import Callable

from .. import __version__
from ..runtime import Session, TensorInfo
from .config import CONFIG_FILE, ModelConfig
from .errors import LoadError

ARTIFACTS = ("model.so", "model.onnx")
#: model.b8.so: a prebuilt artifact of the same model for batch 8 (beside model.so)
BATCH_ARTIFACT = re.compile(r"model\.b([1-9][0-9]*)\.so")


class Artifacts:
    """Finds a version's artifacts and compiles model.onnx files into `cache_dir`; `log`
    receives what the operator should know, `stopping` says when the server is stopping
    (a compile of several batch sizes stops between two of them)."""

    def __init__(self, cache_dir: Path, log: Callable[[str], None],
                 stopping: Callable[[], bool]):
        self.cache_dir = cache_dir
        self.log = log
        self.stopping = stopping

    def in_folder(self, folder: Path, config: ModelConfig, label: str, threads: int
                  ) -> list[tuple[int | None, Path]]:
        """The artifacts in version folder `folder`, each with the batch size its name
        declares (None for model.so, whose batch its inputs tell): one without batching;
        with it, model.so and the model.b{N}.so beside it up to max_batch_size, or
        model.onnx compiled per size. `label` names the version in the log."""
        batching = config.batching
        present = [folder / name for name in ARTIFACTS if (folder / name).is_file()]
        if not present:
            raise LoadError(f"{folder} holds neither {' nor '.join(ARTIFACTS)}")
        if len(present) > 1:
            raise LoadError(f"{folder} holds both {' and '.join(ARTIFACTS)}; keep one, so "
                            f"that it is clear which one is served")
        sized = sorted((int(match.group(1)), path) for path in folder.iterdir()
                       if (match := BATCH_ARTIFACT.fullmatch(path.name)))
        if present[0].suffix == ".onnx":
            if sized:
                raise LoadError(f"{folder} holds model.onnx and "
                                f"{', '.join(p.name for _, p in sized)}; model.b{{N}}.so "
                                f"files go beside a prebuilt model.so (a model.onnx is "
                                f"compiled for each batch size by itself)")
            return self.compiled_sizes(present[0], config, folder, threads)
        if config.dims or config.shapes:
            self.log(f"{label}: config field 'compile' is ignored for model.so "
                     f"(it is already compiled)")
        if batching is None:
            if sized:
                self.log(f"{label}: ignoring {', '.join(p.name for _, p in sized)}: "
                         f"config.json sets no max_batch_size")
            return [(None, present[0])]
        over = [p.name for n, p in sized if n > batching.max_batch_size]
        if over:
            self.log(f"{label}: ignoring {', '.join(over)}: over max_batch_size "
                     f"{batching.max_batch_size}")
        return [(None, present[0])] + [(n, p) for n, p in sized
                                       if n <= batching.max_batch_size]

    def compiled_sizes(self, onnx_path: Path, config: ModelConfig, folder: Path,
                       threads: int) -> list[tuple[int | None, Path]]:
        """`onnx_path` (of version folder `folder`) compiled with the config's options:
        once, or with batching once per batch size the batcher runs (the model's symbolic
        leading dim set to each)."""
        if config.batching is None:
            return [(None, self.compiled(onnx_path, config.dims, config.shapes, threads))]
        symbol = batch_symbol(onnx_path)
        if symbol in config.dims:
            raise LoadError(f"{folder.parent / CONFIG_FILE}: field 'compile.dims' sets "
                            f"{symbol!r}, the batch dim, which max_batch_size sets per batch "
                            f"size; leave it out")
        compiled: list[tuple[int | None, Path]] = []
        for size in config.batching.sizes:
            if self.stopping():
                raise LoadError("the server is stopping")
            shapes = {name: (size,) + shape[1:] if shape else shape
                      for name, shape in config.shapes.items()}
            compiled.append((size, self.compiled(onnx_path, {**config.dims, symbol: size},
                                                 shapes, threads)))
        return compiled

    def compiled(self, onnx_path: Path, dims: dict[str, int],
                 shapes: dict[str, tuple[int, ...]], threads: int) -> Path:
        """`onnx_path` compiled for this machine, from the cache when it is there."""
        from ..driver import compile_model

        digest = hashlib.sha256(onnx_path.read_bytes())
        digest.update(json.dumps({"dims": dims, "shapes": shapes,
                                  "threads_max": threads, "kiln": __version__,
                                  "machine": platform.machine()}, sort_keys=True).encode())
        key = digest.hexdigest()[:32]
        final = self.cache_dir / key
        library = final / "model.so"
        if library.is_file():
            return library
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = self.cache_dir / f".{key}.{os.getpid()}.{threading.get_ident()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        self.log(f"compiling {onnx_path} into the cache {final}")
        try:
            compile_model(str(onnx_path), output=str(staging / "model.so"),
                          dims=dims or None,
                          shapes={k: list(v) for k, v in shapes.items()} or None,
                          threads_max=threads)
            try:
                staging.rename(final)
            except OSError:   # another process cached it first: use theirs
                if not library.is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return library


def batch_symbol(onnx_path: Path) -> str:
    """The symbolic leading dim that every input of the ONNX model shares (its batch), or
    LoadError saying which input has none."""
    import onnx

    try:
        graph = onnx.load(str(onnx_path), load_external_data=False).graph
    except Exception as exc:   # onnx raises DecodeError and others for a broken file
        raise LoadError(f"{onnx_path}: not a readable ONNX model: {exc}") from None
    weights = {tensor.name for tensor in graph.initializer}
    symbols = {}
    for value in graph.input:
        if value.name in weights:
            continue
        dims = value.type.tensor_type.shape.dim
        if not dims or not dims[0].dim_param:
            leading = "no dims" if not dims else f"the fixed leading dim {dims[0].dim_value}"
            raise LoadError(f"{onnx_path}: input {value.name!r} has {leading}, but "
                            f"config.json's max_batch_size needs every input to have a "
                            f"symbolic leading (batch) dim, such as 'batch'; export the model "
                            f"so, or set max_batch_size to 0")
        symbols[value.name] = dims[0].dim_param
    if len(set(symbols.values())) != 1:
        raise LoadError(f"{onnx_path}: the inputs' leading dims are "
                        + ", ".join(f"{n}: {s!r}" for n, s in symbols.items())
                        + "; with max_batch_size every input has the same batch dim first")
    return next(iter(symbols.values()))


def session_batch(session: Session, declared: int | None, max_batch_size: int) -> int:
    """The batch an artifact is compiled for: the leading dim of every input and output
    (the size its file name declares, if any, and at most max_batch_size)."""
    tensors = list(session.inputs) + list(session.outputs)
    if not session.inputs or any(not t.shape for t in tensors):
        raise LoadError(f"{session.path}: with max_batch_size every input and output has a "
                        f"batch dim first, but it has "
                        + ("no inputs" if not session.inputs else
                           f"the scalar {next(t.name for t in tensors if not t.shape)!r}"))
    size = session.inputs[0].shape[0]
    for tensor in tensors:
        if tensor.shape[0] != size:
            raise LoadError(f"{session.path}: {tensor.name!r} has leading dim "
                            f"{tensor.shape[0]} but input {session.inputs[0].name!r} has "
                            f"{size}; with max_batch_size every input and output has the "
                            f"batch first")
    if declared is not None and size != declared:
        raise LoadError(f"{session.path} is named for batch {declared} but is compiled for "
                        f"batch {size}")
    if not 1 <= size <= max_batch_size:
        raise LoadError(f"{session.path} is compiled for batch {size}, but config.json's "
                        f"max_batch_size is {max_batch_size}")
    return size


def check_same_model(by_size: dict[int, Session]) -> None:
    """The artifacts of the batch sizes have the same tensors but for the batch dim."""
    def signature(session: Session) -> list[tuple]:
        return [(t.name, t.dtype, t.shape[1:])
                for t in list(session.inputs) + list(session.outputs)]

    sizes = sorted(by_size)
    first = by_size[sizes[0]]
    for size in sizes[1:]:
        if signature(by_size[size]) != signature(first):
            raise LoadError(f"{by_size[size].path} (batch {size}) and {first.path} (batch "
                            f"{sizes[0]}) differ in more than the batch dim: "
                            f"{[str(t) for t in by_size[size].inputs]} vs "
                            f"{[str(t) for t in first.inputs]}")


def batch_dim(tensor: TensorInfo) -> TensorInfo:
    """`tensor` as the metadata shows it with batching: -1 for the batch dim (nbytes: one
    row's)."""
    return dataclasses.replace(tensor, shape=(-1,) + tuple(tensor.shape[1:]),
                               nbytes=tensor.nbytes // max(tensor.shape[0], 1))
