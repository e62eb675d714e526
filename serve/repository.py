"""The model repository: what `kiln serve` serves, loaded into sessions and schedulers.

    REPO/
      MODEL/
        config.json          optional (config.py)
        1/model.so           a Kiln artifact, or
        2/model.onnx         an ONNX model, compiled on load into the cache

or a single model.so / model.onnx, served as model <stem>, version 1, with the defaults.

Models load one by one and each on its own: a broken config or artifact makes that model
UNAVAILABLE with the reason (shown by the model ready endpoint and the repository index),
and the others serve. Compiled ONNX models are cached by the hash of the file's content, the
compile options and the Kiln version, so a restart does not compile them again.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from .. import __version__
from ..compiler.errors import KilnError
from ..runtime import Session, TensorInfo, load
from .budget import ThreadBudget
from .config import ModelConfig, load_config
from .errors import ConfigError, NotFound, ServeError, Unavailable
from .stats import VersionStats
from .protocol import datatype_name
from .scheduler import Scheduler

READY, LOADING, UNLOADING, UNAVAILABLE = "READY", "LOADING", "UNLOADING", "UNAVAILABLE"
ARTIFACTS = ("model.so", "model.onnx")
CONFIG_FILE = "config.json"
#: How long an unload waits for the version's queued and running requests.
UNLOAD_DRAIN_SECONDS = 60.0
#: How long the server's exit waits for the runs in progress (the queued ones are dropped).
EXIT_WAIT_SECONDS = 10.0


class LoadError(ServeError):
    """A model version cannot be served; the message says why (shown as its reason)."""


class VersionHooks(Protocol):
    """What the server does when a version starts or stops serving (metrics.py)."""

    def version_ready(self, version: "ModelVersion") -> None: ...

    def version_gone(self, version: "ModelVersion") -> None: ...


@dataclass(eq=False)
class ModelVersion:
    """One served version of a model: its sessions, its scheduler, its state."""

    model: str
    version: int
    folder: Path
    config: ModelConfig
    state: str = LOADING
    reason: str = ""
    artifact: Path | None = None
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    scheduler: Scheduler | None = None
    threads: int = 0          # runtime threads reserved from the budget, all instances
    stats: VersionStats = field(default_factory=VersionStats)

    @property
    def label(self) -> str:
        return f"model '{self.model}' version {self.version}"

    @property
    def ready(self) -> bool:
        return self.state == READY


@dataclass(eq=False)
class Model:
    """A model of the repository and its versions."""

    name: str
    folder: Path
    config: ModelConfig | None = None
    state: str = LOADING
    reason: str = ""
    versions: dict[int, ModelVersion] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def ready_versions(self) -> list[ModelVersion]:
        return [v for _, v in sorted(self.versions.items()) if v.ready]

    def why_not_ready(self) -> str:
        """The model's own problem, or each version's."""
        if self.reason:
            return self.reason
        if self.state == LOADING and not self.versions:
            return "loading"
        reasons = [f"version {v.version}: {v.state.lower()}" + (f" ({v.reason})" if v.reason
                                                                else "")
                   for _, v in sorted(self.versions.items()) if not v.ready]
        return "; ".join(reasons) or "no version is loaded"


class Repository:
    """The models under `source` (a repository folder, or one model.so / model.onnx file),
    loaded with runtime threads out of `budget`. `cache_dir`: where compiled ONNX models go
    (default REPO/.kiln-cache, or ~/.cache/kiln/serve beside a single file). `log` receives
    one line per event worth telling the operator."""

    def __init__(self, source: str | os.PathLike, budget: ThreadBudget,
                 cache_dir: str | os.PathLike | None = None,
                 hooks: VersionHooks | None = None, log: Callable[[str], None] = print):
        self.source = Path(source)
        self.budget = budget
        self.hooks = hooks
        self.log = log
        self._models: dict[str, Model] = {}
        self._lock = threading.Lock()
        self._closing = False
        if self.source.is_file():
            if self.source.suffix not in (".so", ".onnx"):
                raise ConfigError(f"{self.source}: serve a model.so, a model.onnx or a "
                                  f"repository folder of MODEL/VERSION/model.so")
            self.single = True
            default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) \
                / "kiln" / "serve"
        elif self.source.is_dir():
            self.single = False
            default_cache = self.source / ".kiln-cache"
        else:
            raise ConfigError(f"{self.source}: no such file or folder (expected a repository "
                              f"folder, a model.so or a model.onnx)")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache
        self.default_threads = 1

    # -- what is there ----------------------------------------------------------------------

    def model_names(self) -> list[str]:
        """The models on disk: one for a single file, else the repository's folders (hidden
        ones, such as the compile cache, skipped)."""
        if self.single:
            return [self.source.stem]
        return sorted(p.name for p in self.source.iterdir()
                      if p.is_dir() and not p.name.startswith((".", "_")))

    def models(self) -> list[Model]:
        """The models known (listed, loaded or failed), by name."""
        with self._lock:
            return [self._models[n] for n in sorted(self._models)]

    def model(self, name: str) -> Model:
        """The model called `name`, or NotFound listing the ones there are."""
        with self._lock:
            found = self._models.get(name)
            names = sorted(self._models)
        if found is None:
            raise NotFound(f"unknown model {name!r}; the repository has: "
                           + (", ".join(names) or "no models"))
        return found

    def version(self, name: str, version: str | None) -> ModelVersion:
        """The version a request names (its latest ready one if `version` is None): NotFound
        for an unknown model or version, Unavailable (with the reason) for one not ready."""
        model = self.model(name)
        if version is None:
            ready = model.ready_versions
            if not ready:
                raise Unavailable(f"model {name!r} is not ready: {model.why_not_ready()}")
            return ready[-1]
        number = int(version) if version.isdigit() else None
        found = model.versions.get(number) if number is not None else None
        if found is None:
            known = ", ".join(str(v) for v in sorted(model.versions)) or "none"
            raise NotFound(f"model {name!r} has no version {version!r}; its versions are: "
                           f"{known}")
        if not found.ready:
            raise Unavailable(f"{found.label} is not ready ({found.state.lower()}): "
                              f"{found.reason or 'loading'}")
        return found

    def index(self, ready_only: bool = False) -> list[dict]:
        """The repository index: one entry per model version (or per model without a
        version), with its state and, when not ready, the reason."""
        entries = []
        for model in self.models():
            versions = [v for _, v in sorted(model.versions.items())]
            if not versions:
                entries.append({"name": model.name, "state": model.state,
                                "reason": model.reason})
            for v in versions:
                entries.append({"name": model.name, "version": str(v.version),
                                "state": v.state, "reason": v.reason})
        return [e for e in entries if e["state"] == READY] if ready_only else entries

    def busy(self) -> int:
        """Requests queued or running, across every loaded version."""
        return sum(v.scheduler.busy for m in self.models() for v in m.versions.values()
                   if v.scheduler is not None)

    # -- loading ----------------------------------------------------------------------------

    def plan_threads(self) -> int:
        """Work out the threads of an instance whose config does not set them: what the
        configs that do set them leave of the budget, shared evenly by the other instances
        of every version to be served (at least one thread each). An unreadable config
        counts as one default instance."""
        fixed, shared = 0, 0
        for name in self.model_names():
            try:
                config = self._config(name)
                found, _ = ([1], []) if self.single else _version_folders(self._folder(name))
            except (ConfigError, OSError):   # its load will say what is wrong
                config, found = ModelConfig(), [1]
            instances = config.instances * max(1, len(config.version_policy.select(found)))
            if config.threads_per_instance is not None:
                fixed += instances * config.threads_per_instance
            else:
                shared += instances
        self.default_threads = max(1, (self.budget.total - fixed) // max(shared, 1))
        return self.default_threads

    def discover(self) -> None:
        """List the models on disk as LOADING (before they load, so that a request in the
        meantime hears that they are loading rather than that they do not exist)."""
        with self._lock:
            for name in self.model_names():
                self._models.setdefault(name, Model(name, self._folder(name)))

    def load_all(self) -> None:
        """Load every model on disk, each independently of the others' success."""
        self.discover()
        for name in self.model_names():
            if self._closing:
                return
            try:
                self.load(name)
            except Exception as exc:   # one model's surprise must not stop the others
                model = self._models[name]
                model.state = UNAVAILABLE
                model.reason = f"loading failed: {type(exc).__name__}: {exc}"
                self.log(f"model '{name}': not loaded: {model.reason}")

    def load(self, name: str) -> Model:
        """Load (or reload: unload, then load) model `name` from disk. Failures are recorded
        in the model's state and reason, not raised; NotFound if there is no such model."""
        if name not in self.model_names():
            raise NotFound(f"no model {name!r} in {self.source}; the models there are: "
                           + (", ".join(self.model_names()) or "none"))
        with self._lock:
            model = self._models.setdefault(name, Model(name, self._folder(name)))
        with model.lock:
            self._stop_versions(model, "reloading")
            model.versions, model.state, model.reason = {}, LOADING, ""
            try:
                model.config = self._config(name)
                numbers = self._select_versions(model)
            except (ConfigError, LoadError) as exc:
                model.state, model.reason = UNAVAILABLE, str(exc)
                self.log(f"model '{name}': not loaded: {exc}")
                return model
            for number in numbers:
                folder = self.source if self.single else model.folder / str(number)
                model.versions[number] = ModelVersion(name, number, folder, model.config)
            for number in numbers:
                if self._closing:
                    break
                self._load_version(model.versions[number])
            model.state = READY if model.ready_versions else UNAVAILABLE
            return model

    def unload(self, name: str) -> Model:
        """Stop serving model `name`: refuse new requests, finish queued ones, free its
        sessions and threads. It stays in the index as UNAVAILABLE until loaded again."""
        model = self.model(name)
        with model.lock:
            self._stop_versions(model, "unloaded")
            model.state, model.reason = UNAVAILABLE, "unloaded through the repository API"
        return model

    def close(self) -> None:
        """Unload everything at server exit: the HTTP side is gone, so requests still queued
        are dropped, runs in progress get EXIT_WAIT_SECONDS to end, and a model still
        loading (compiling, say) is not waited for beyond that."""
        self._closing = True
        for model in self.models():
            if not model.lock.acquire(timeout=EXIT_WAIT_SECONDS):
                self.log(f"model '{model.name}': still loading; not waiting for it")
                continue
            try:
                self._stop_versions(model, "server stopped", exiting=True)
            finally:
                model.lock.release()

    def _folder(self, name: str) -> Path:
        return self.source if self.single else self.source / name

    def _config(self, name: str) -> ModelConfig:
        if self.single:
            return ModelConfig()
        return load_config(self.source / name / CONFIG_FILE, name)

    def _select_versions(self, model: Model) -> list[int]:
        if self.single:
            return [1]
        found, ignored = _version_folders(model.folder)
        if ignored:
            self.log(f"model '{model.name}': ignoring folder(s) {', '.join(ignored)}: version "
                     f"folders are named by positive integers")
        if not found:
            raise LoadError(f"{model.folder} has no version folder (1/, 2/, ... holding "
                            f"model.so or model.onnx)")
        policy = model.config.version_policy
        chosen = policy.select(found)
        if not chosen:
            raise LoadError(f"{model.folder / CONFIG_FILE}: field 'version_policy' selects "
                            f"{policy.describe()}, but the versions there are "
                            f"{', '.join(map(str, found))}")
        return chosen

    def _load_version(self, version: ModelVersion) -> None:
        config = version.config
        threads = config.threads_per_instance or self.default_threads
        try:
            version.artifact = self._artifact(version, threads)
            self.budget.reserve(config.instances * threads, version.label)
            version.threads = config.instances * threads
            for _ in range(config.instances):
                version.sessions.append(load(version.artifact, threads=threads))
            first = version.sessions[0]
            version.inputs, version.outputs = list(first.inputs), list(first.outputs)
            for tensor in version.inputs + version.outputs:
                try:
                    datatype_name(tensor.dtype)
                except ServeError as exc:
                    raise LoadError(f"tensor {tensor.name!r}: {exc}") from None
            self._warm_up(version)
        except Exception as exc:   # whatever it is, this version alone is not served
            self._release(version)
            version.state = UNAVAILABLE
            version.reason = str(exc) if isinstance(exc, (KilnError, OSError)) else \
                f"{type(exc).__name__}: {exc}"
            self.log(f"{version.label}: not ready: {exc}")
            return
        version.scheduler = Scheduler(version.sessions, config.max_queue_size, version.label,
                                      on_compute=version.stats.computed)
        version.state, version.reason = READY, ""
        if self.hooks is not None:
            self.hooks.version_ready(version)
        self.log(f"{version.label}: ready ({config.instances} instance(s) x {threads} "
                 f"thread(s), queue {config.max_queue_size}, from {version.artifact})")

    def _warm_up(self, version: ModelVersion) -> None:
        """One run on zeros per instance, before the version takes traffic: the first run's
        page faults and allocations happen here, and an artifact that fails to run is
        found now rather than by a user."""
        feed = {t.name: np.zeros(t.shape, t.dtype) for t in version.inputs}
        for session in version.sessions:
            try:
                session.run(feed)
            except KilnError as exc:
                raise LoadError(f"the warm-up run failed: {exc}") from None

    def _artifact(self, version: ModelVersion, threads: int) -> Path:
        if self.single:
            return self.source if self.source.suffix == ".so" else \
                self._compiled(self.source, version.config, threads)
        present = [version.folder / name for name in ARTIFACTS
                   if (version.folder / name).is_file()]
        if not present:
            raise LoadError(f"{version.folder} holds neither {' nor '.join(ARTIFACTS)}")
        if len(present) > 1:
            raise LoadError(f"{version.folder} holds both {' and '.join(ARTIFACTS)}; keep "
                            f"one, so that it is clear which one is served")
        if present[0].suffix == ".so":
            if version.config.dims or version.config.shapes:
                self.log(f"{version.label}: config field 'compile' is ignored for model.so "
                         f"(it is already compiled)")
            return present[0]
        return self._compiled(present[0], version.config, threads)

    def _compiled(self, onnx_path: Path, config: ModelConfig, threads: int) -> Path:
        """`onnx_path` compiled for this machine, from the cache when it is there."""
        from ..driver import compile_model

        digest = hashlib.sha256(onnx_path.read_bytes())
        digest.update(json.dumps({"dims": config.dims, "shapes": config.shapes,
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
                          dims=config.dims or None,
                          shapes={k: list(v) for k, v in config.shapes.items()} or None,
                          threads_max=threads)
            try:
                staging.rename(final)
            except OSError:   # another process cached it first: use theirs
                if not library.is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return library

    def _stop_versions(self, model: Model, why: str, exiting: bool = False) -> None:
        for version in model.versions.values():
            stuck = False
            if version.state == READY:
                version.state = UNLOADING
                wait = EXIT_WAIT_SECONDS if exiting else UNLOAD_DRAIN_SECONDS
                if version.scheduler is not None and not version.scheduler.close(
                        wait, abandon_queued=exiting):
                    stuck = True
                    self.log(f"{version.label}: a run was still going after {wait:.0f} s; "
                             f"leaving its session open")
                if self.hooks is not None:
                    self.hooks.version_gone(version)
            self._release(version, close_sessions=not stuck)
            version.state, version.reason = UNAVAILABLE, why

    def _release(self, version: ModelVersion, close_sessions: bool = True) -> None:
        """Give back `version`'s threads and (unless a run is stuck in one) its sessions."""
        for session in version.sessions if close_sessions else ():
            session.close()
        version.sessions = []
        version.scheduler = None
        self.budget.release(version.threads)
        version.threads = 0


def _version_folders(folder: Path) -> tuple[list[int], list[str]]:
    """The version numbers of a model's folder (sub-folders named 1, 2, ...), and the other
    sub-folders' names (not hidden ones)."""
    found, ignored = [], []
    for entry in sorted(folder.iterdir()):
        if not entry.is_dir():
            continue
        if entry.name.isdigit() and int(entry.name) >= 1:
            found.append(int(entry.name))
        elif not entry.name.startswith("."):
            ignored.append(entry.name)
    return found, ignored
