"""The model repository: what `kiln serve` serves, loaded into sessions and schedulers.

    REPO/
      MODEL/
        config.json          optional (config.py)
        1/model.so           a Kiln artifact (with max_batch_size: plus model.b{N}.so, the
                             same model compiled for batch N), or
        2/model.onnx         an ONNX model, compiled on load into the cache (with
                             max_batch_size: once per batch size the batcher runs)

or a single model.so / model.onnx, served as model <stem>, version 1, with the defaults.

Models load one by one and each on its own: a broken config or artifact makes that model
UNAVAILABLE with the reason (shown by the model ready endpoint and the repository index),
and the others serve. Where a version's artifacts come from (its folder, or its model.onnx
compiled into the cache) is artifacts.py.

Loading a model that serves (the load API, or a poll that sees its folder change) has no
gap: a new or changed version is loaded and warmed beside the one serving, then takes the
traffic, and the one it replaces drains in the background (every request that holds it is
answered) before it is freed. A load that fails leaves what served serving, and says why.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ..compiler.errors import KilnError
from ..runtime import Session, TensorInfo, load
from .artifacts import ARTIFACTS, BATCH_ARTIFACT, Artifacts, batch_dim, check_same_model, \
    session_batch
from .budget import ThreadBudget
from .config import CONFIG_FILE, ModelConfig, VersionPolicy, load_config
from .errors import ConfigError, LoadError, NotFound, ServeError, Unavailable
from .stats import VersionStats
from .protocol import datatype_name
from .scheduler import Scheduler

READY, LOADING, UNLOADING, UNAVAILABLE = "READY", "LOADING", "UNLOADING", "UNAVAILABLE"
#: How long an unload waits for the version's queued and running requests.
UNLOAD_DRAIN_SECONDS = 60.0
#: How long the server's exit waits for the runs in progress (the queued ones are dropped).
EXIT_WAIT_SECONDS = 10.0
#: How often a draining version looks whether the server is exiting.
DRAIN_CHECK_SECONDS = 0.05
#: How many times a request looks up its version again when the one it found was just
#: replaced (the replacement is in place before the old one stops taking requests).
ACQUIRE_TRIES = 3


class VersionHooks(Protocol):
    """What the server does when a version starts or stops serving, and when it runs a
    batch (metrics.py)."""

    def version_ready(self, version: "ModelVersion") -> None: ...

    def version_gone(self, version: "ModelVersion") -> None: ...

    def batch_run(self, version: "ModelVersion", rows: int, padded: int) -> None: ...


@dataclass(eq=False)
class ModelVersion:
    """One served version of a model: its sessions, its scheduler, its state. With
    batching, `inputs` and `outputs` have -1 for the batch dim (as the metadata says) and
    `batch_sizes` lists the sizes its artifacts are compiled for. `users` counts the
    requests holding it (acquire/release): a version that is replaced drains until none
    does."""

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
    batch_sizes: tuple[int, ...] = ()
    signature: tuple = ()     # the version folder's artifact files (names, sizes, times)
    users: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @property
    def label(self) -> str:
        return f"model '{self.model}' version {self.version}"

    @property
    def ready(self) -> bool:
        return self.state == READY

    def set_state(self, state: str, reason: str | None = None) -> None:
        """Change the state (and the reason, when given) atomically with acquire()."""
        with self._cond:
            self.state = state
            if reason is not None:
                self.reason = reason

    def acquire(self) -> bool:
        """Hold this version for one request, if it is ready; release() when answered."""
        with self._cond:
            if self.state != READY:
                return False
            self.users += 1
            return True

    def release(self) -> None:
        """A request that held this version is answered."""
        with self._cond:
            self.users -= 1
            if self.users <= 0:
                self._cond.notify_all()

    def wait_unused(self, timeout: float, stop: Callable[[], bool]) -> bool:
        """Wait until no request holds this version (True), `timeout` seconds pass or
        `stop()` turns true (False)."""
        end = time.monotonic() + timeout
        with self._cond:
            while self.users > 0:
                left = end - time.monotonic()
                if left <= 0 or stop():
                    return False
                self._cond.wait(min(left, DRAIN_CHECK_SECONDS))
            return True


@dataclass(eq=False)
class Model:
    """A model of the repository and its versions. `load_error` says why its last load
    (or reload) failed, "" when it succeeded; `signature` is what its folder held then."""

    name: str
    folder: Path
    config: ModelConfig | None = None
    state: str = LOADING
    reason: str = ""
    versions: dict[int, ModelVersion] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    load_error: str = ""
    signature: tuple = ()

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
        self._retiring: list[threading.Thread] = []   # versions draining after a change
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
        self.artifacts = Artifacts(self.cache_dir, log, stopping=lambda: self._closing)
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

    def acquire(self, name: str, version: str | None) -> ModelVersion:
        """version(), held for one request until its release(): a version that is replaced
        meanwhile drains only once every request holding it is answered. A version found
        just as it is replaced is looked up again (its successor is already in place)."""
        for _ in range(ACQUIRE_TRIES):
            found = self.version(name, version)
            if found.acquire():
                return found
        raise Unavailable(f"{found.label} is being replaced or unloaded; retry")

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
        schedulers = [v.scheduler for m in self.models() for v in list(m.versions.values())]
        return sum(s.busy for s in schedulers if s is not None)

    def refuse_queued(self, message: str) -> int:
        """Refuse (503) the requests still queued for every loaded version; how many."""
        schedulers = [v.scheduler for m in self.models() for v in list(m.versions.values())]
        return sum(s.refuse_queued(message) for s in schedulers if s is not None)

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
        """Load model `name` from disk, or bring a loaded one up to date with it, without a
        gap: each selected version that is new, or whose artifact files or config changed,
        is loaded and warmed beside the one serving; once ready it takes the traffic and
        the one it replaces drains in the background. Versions the policy no longer selects
        drain too, once a selected one is ready; unchanged ones serve on untouched. What
        fails leaves its predecessor serving: the reason goes to the model's load_error,
        the version's reason and the log, not raised. NotFound if there is no such model."""
        if name not in self.model_names():
            raise NotFound(f"no model {name!r} in {self.source}; the models there are: "
                           + (", ".join(self.model_names()) or "none"))
        with self._lock:
            model = self._models.setdefault(name, Model(name, self._folder(name)))
        with model.lock:
            model.signature = _model_signature(model.folder)
            try:
                config = self._config(name)
                numbers = self._select_versions(model, config.version_policy)
            except (ConfigError, LoadError) as exc:
                self._load_failed(model, str(exc))
                return model
            model.config, model.reason = config, ""
            if not model.ready_versions:
                model.state = LOADING
            failures = []
            dropped = sum(v.threads for v in model.ready_versions if v.version not in numbers)
            for number in numbers:
                if self._closing:
                    break
                failure = self._update_version(model, number, config, dropped)
                if failure:
                    failures.append(failure)
            if any(model.versions[n].ready for n in numbers if n in model.versions):
                for number, old in list(model.versions.items()):
                    if number in numbers:
                        continue
                    if old.ready:
                        self._retire(model, old, f"no longer selected by "
                                                 f"{config.version_policy.describe()}")
                    elif old.state != UNLOADING:
                        del model.versions[number]
            else:
                kept = [str(v.version) for v in model.ready_versions if v.version not in numbers]
                if kept:
                    failures.append(f"version(s) {', '.join(kept)} still serve, since none of "
                                    f"those selected ({', '.join(map(str, numbers))}) loaded")
            model.load_error = "; ".join(failures)
            model.state = READY if model.ready_versions else UNAVAILABLE
            return model

    def poll(self) -> list[str]:
        """Bring the models up to date with the repository folder (kiln serve
        --poll-repository): load() each model whose folder appeared or changed (a version
        folder, an artifact or config.json added, removed or rewritten), unload each whose
        folder is gone. Returns the names of the models it loaded or unloaded."""
        if self.single or self._closing:
            return []
        on_disk = set(self.model_names())
        changed = []
        for name in sorted(on_disk):
            with self._lock:
                model = self._models.get(name)
            if model is None or model.signature != _model_signature(self._folder(name)):
                self.load(name)
                changed.append(name)
        for model in self.models():
            if model.name not in on_disk and model.ready_versions:
                self.unload(model.name, why="unloaded: its folder was removed")
                changed.append(model.name)
        return changed

    def unload(self, name: str, why: str = "unloaded through the repository API") -> Model:
        """Stop serving model `name`: refuse new requests, finish queued ones, free its
        sessions and threads. It stays in the index as UNAVAILABLE until loaded again."""
        model = self.model(name)
        with model.lock:
            self._stop_versions(model, "unloaded")
            model.state, model.reason, model.load_error = UNAVAILABLE, why, ""
        return model

    def close(self) -> None:
        """Unload everything at server exit: the HTTP side is gone, so requests still queued
        are dropped, runs in progress get EXIT_WAIT_SECONDS to end, and a model still
        loading (compiling, say) is not waited for beyond that."""
        self._closing = True
        for thread in list(self._retiring):
            thread.join(EXIT_WAIT_SECONDS)
        for model in self.models():
            if not model.lock.acquire(timeout=EXIT_WAIT_SECONDS):
                self.log(f"model '{model.name}': still loading; not waiting for it")
                continue
            try:
                self._stop_versions(model, "server stopped", exiting=True)
            finally:
                model.lock.release()

    def _update_version(self, model: Model, number: int, config: ModelConfig,
                        dropped: int) -> str:
        """Load version `number` of `model` unless the one serving is up to date; swap it in
        once ready and retire the one it replaces. `dropped`: threads of the versions the
        policy no longer selects (retired once this load is done), which it may borrow.
        Returns why it failed, or ""."""
        folder = self.source if self.single else model.folder / str(number)
        signature = _version_signature(folder)
        old = model.versions.get(number)
        if old is not None and old.ready and old.config == config and \
                old.signature == signature:
            old.reason = ""
            return ""
        new = ModelVersion(model.name, number, folder, config, signature=signature)
        serving = old if old is not None and old.ready else None
        if serving is None:
            model.versions[number] = new   # listed as loading from now on
        self._load_version(new, borrow=dropped + (serving.threads if serving else 0))
        if new.ready:
            model.versions[number] = new
            if serving is not None:
                self._retire(model, serving, "replaced by a new load of the same version")
            return ""
        if serving is not None:
            serving.reason = (f"loading it again failed ({new.reason}); the copy loaded "
                              f"before still serves")
            self.log(f"{serving.label}: {serving.reason}")
        return f"version {number}: {new.reason}"

    def _load_failed(self, model: Model, why: str) -> None:
        """The model's config or folder is wrong: what serves keeps serving, saying why."""
        model.load_error = why
        serving = model.ready_versions
        if serving:
            for version in serving:
                version.reason = (f"the model's last load failed ({why}); this version, "
                                  f"loaded before, still serves")
            self.log(f"model '{model.name}': load failed, still serving version(s) "
                     f"{', '.join(str(v.version) for v in serving)}: {why}")
            return
        model.versions = {n: v for n, v in model.versions.items() if v.state == UNLOADING}
        model.state, model.reason = UNAVAILABLE, why
        self.log(f"model '{model.name}': not loaded: {why}")

    def _retire(self, model: Model, old: ModelVersion, why: str) -> None:
        """Stop routing requests to `old` (at once, atomically with acquire()) and drain it
        on a thread of its own: the requests holding it are answered, then it is freed."""
        old.set_state(UNLOADING, f"{why}; draining")
        self.budget.draining(old.threads)
        self.log(f"{old.label}: {why}; draining, then unloading")
        self._retiring = [t for t in self._retiring if t.is_alive()]
        thread = threading.Thread(target=self._drain, args=(model, old), daemon=True,
                                  name=f"kiln-serve drain {old.label}")
        self._retiring.append(thread)
        thread.start()

    def _drain(self, model: Model, old: ModelVersion) -> None:
        """Wait for `old`'s last request (at most UNLOAD_DRAIN_SECONDS, less once the server
        exits), then free it and take it out of the model's versions."""
        if not old.wait_unused(UNLOAD_DRAIN_SECONDS, lambda: self._closing):
            self.log(f"{old.label}: requests still held it after draining; unloading it")
        stuck = False
        if old.scheduler is not None:
            wait = EXIT_WAIT_SECONDS if self._closing else UNLOAD_DRAIN_SECONDS
            if not old.scheduler.close(wait, abandon_queued=self._closing):
                stuck = True
                self.log(f"{old.label}: a run was still going after {wait:.0f} s; leaving "
                         f"its session open")
        if self.hooks is not None:
            self.hooks.version_gone(old)
        self._release(old, close_sessions=not stuck, draining=True)
        old.set_state(UNAVAILABLE, old.reason.replace("; draining", "; unloaded"))
        with model.lock:
            if model.versions.get(old.version) is old:
                del model.versions[old.version]
        self.log(f"{old.label}: drained and unloaded")

    def _folder(self, name: str) -> Path:
        return self.source if self.single else self.source / name

    def _config(self, name: str) -> ModelConfig:
        if self.single:
            return ModelConfig()
        return load_config(self.source / name / CONFIG_FILE, name)

    def _select_versions(self, model: Model, policy: VersionPolicy) -> list[int]:
        if self.single:
            return [1]
        found, ignored = _version_folders(model.folder)
        if ignored:
            self.log(f"model '{model.name}': ignoring folder(s) {', '.join(ignored)}: version "
                     f"folders are named by positive integers")
        if not found:
            raise LoadError(f"{model.folder} has no version folder (1/, 2/, ... holding "
                            f"model.so or model.onnx)")
        chosen = policy.select(found)
        if not chosen:
            raise LoadError(f"{model.folder / CONFIG_FILE}: field 'version_policy' selects "
                            f"{policy.describe()}, but the versions there are "
                            f"{', '.join(map(str, found))}")
        return chosen

    def _load_version(self, version: ModelVersion, borrow: int = 0) -> None:
        """Load, check and warm `version` (READY with a scheduler, or UNAVAILABLE with the
        reason). `borrow`: threads of the version it replaces, which it may use on top of
        the budget while that one drains (they are given back when it is freed)."""
        config = version.config
        threads = config.threads_per_instance or self.default_threads
        instances: list[dict[int, Session]] = []
        try:
            paths = self._artifacts(version, threads)
            version.artifact = paths[0][1]
            self.budget.reserve(config.instances * threads, version.label, borrow)
            version.threads = config.instances * threads
            for _ in range(config.instances):
                by_size: dict[int, Session] = {}
                for declared, path in paths:
                    session = load(path, threads=threads)
                    version.sessions.append(session)
                    size = 0 if config.batching is None else session_batch(
                        session, declared, config.batching.max_batch_size)
                    if size in by_size:
                        raise LoadError(f"{path} and {by_size[size].path} are both compiled "
                                        f"for batch {size}; keep one of them")
                    by_size[size] = session
                instances.append(by_size)
            first = instances[0][min(instances[0])]
            version.inputs, version.outputs = list(first.inputs), list(first.outputs)
            for tensor in version.inputs + version.outputs:
                try:
                    datatype_name(tensor.dtype)
                except ServeError as exc:
                    raise LoadError(f"tensor {tensor.name!r}: {exc}") from None
            if config.batching is not None:
                check_same_model(instances[0])
                version.batch_sizes = tuple(sorted(instances[0]))
                version.inputs = [batch_dim(t) for t in version.inputs]
                version.outputs = [batch_dim(t) for t in version.outputs]
            self._warm_up(version)
        except Exception as exc:   # whatever it is, this version alone is not served
            self._release(version)
            version.state = UNAVAILABLE
            version.reason = str(exc) if isinstance(exc, (KilnError, OSError)) else \
                f"{type(exc).__name__}: {exc}"
            self.log(f"{version.label}: not ready: {exc}")
            return
        if config.batching is None:
            version.scheduler = Scheduler([i[0] for i in instances], config.max_queue_size,
                                          version.label, on_compute=version.stats.computed)
        else:
            version.scheduler = Scheduler(
                instances, config.max_queue_size, version.label,
                on_compute=version.stats.computed, batching=config.batching,
                on_batch=lambda rows, padded, seconds, ok: self._batch_ran(
                    version, rows, padded, seconds, ok))
        version.set_state(READY, "")
        if self.hooks is not None:
            self.hooks.version_ready(version)
        batching = "" if config.batching is None else (
            f", batch sizes {', '.join(map(str, version.batch_sizes))} of at most "
            f"{config.batching.max_batch_size}")
        self.log(f"{version.label}: ready ({config.instances} instance(s) x {threads} "
                 f"thread(s), queue {config.max_queue_size}{batching}, from "
                 f"{version.artifact})")

    def _batch_ran(self, version: ModelVersion, rows: int, padded: int, seconds: float,
                   ok: bool) -> None:
        """The scheduler ran a batch of `rows` rows (and `padded` rows of zeros)."""
        if ok:
            version.stats.batched(rows, seconds)
        if self.hooks is not None:
            self.hooks.batch_run(version, rows, padded)

    def _warm_up(self, version: ModelVersion) -> None:
        """One run on zeros per session (each instance, each batch size), before the
        version takes traffic: the first run's page faults and allocations happen here, and
        an artifact that fails to run is found now rather than by a user."""
        for session in version.sessions:
            try:
                session.run({t.name: np.zeros(t.shape, t.dtype) for t in session.inputs})
            except KilnError as exc:
                raise LoadError(f"the warm-up run of {session.path} failed: {exc}") from None

    def _artifacts(self, version: ModelVersion, threads: int) -> list[tuple[int | None, Path]]:
        """The artifacts of `version`, each with the batch size its name declares (None for
        model.so, whose batch its inputs tell); see artifacts.py."""
        if not self.single:
            return self.artifacts.in_folder(version.folder, version.config, version.label,
                                            threads)
        if self.source.suffix == ".so":
            return [(None, self.source)]
        return self.artifacts.compiled_sizes(self.source, version.config, version.folder,
                                             threads)

    def _stop_versions(self, model: Model, why: str, exiting: bool = False) -> None:
        """Unload every version of `model` but those draining after a change (their own
        threads free them)."""
        for version in model.versions.values():
            if version.state == UNLOADING:
                continue
            stuck = False
            if version.state == READY:
                version.set_state(UNLOADING)
                wait = EXIT_WAIT_SECONDS if exiting else UNLOAD_DRAIN_SECONDS
                if not exiting:   # a request that holds it (reading its body) is answered
                    version.wait_unused(wait, lambda: self._closing)
                if version.scheduler is not None and not version.scheduler.close(
                        wait, abandon_queued=exiting):
                    stuck = True
                    self.log(f"{version.label}: a run was still going after {wait:.0f} s; "
                             f"leaving its session open")
                if self.hooks is not None:
                    self.hooks.version_gone(version)
            self._release(version, close_sessions=not stuck)
            version.set_state(UNAVAILABLE, why)

    def _release(self, version: ModelVersion, close_sessions: bool = True,
                 draining: bool = False) -> None:
        """Give back `version`'s threads (`draining`: it was retired) and (unless a run is
        stuck in one) its sessions."""
        sessions, version.sessions = version.sessions, []
        threads, version.threads = version.threads, 0
        for session in sessions if close_sessions else ():
            session.close()
        version.scheduler = None
        self.budget.release(threads, draining)


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


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def _version_signature(folder: Path) -> tuple:
    """The artifact files of a version folder, with their sizes and modification times: a
    poll reloads the version when they change."""
    try:
        entries = sorted(folder.iterdir()) if folder.is_dir() else []
    except OSError:
        return ()
    return tuple((entry.name, _stat(entry)) for entry in entries
                 if entry.name in ARTIFACTS or BATCH_ARTIFACT.fullmatch(entry.name))


def _model_signature(folder: Path) -> tuple:
    """What a model's folder holds, as far as loading it goes: config.json and each version
    folder's artifacts."""
    try:
        versions = tuple((entry.name, _version_signature(entry))
                         for entry in sorted(folder.iterdir())
                         if entry.is_dir() and entry.name.isdigit())
    except OSError:
        return ()
    return _stat(folder / CONFIG_FILE), versions
