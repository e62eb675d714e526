"""A model's config.json: its schema, its defaults, and validation that names the file and
the field of every mistake.

    {
      "version_policy": {"latest": {"num_versions": 1}},   # or {"all": {}},
                                                          # or {"specific": {"versions": [1, 3]}}
      "max_queue_size": 64,          # requests waiting for an instance (not those running)
      "default_timeout_ms": null,    # how long a request may wait in the queue; null: forever
      "allow_request_timeout": true, # a request's own "timeout" parameter (microseconds)
      "instances": 1,                # sessions of the model, each with its worker thread
      "threads_per_instance": null,  # runtime threads of each; null: a share of the budget
      "max_batch_size": 0,           # rows the batcher may join along dim 0; 0: no batch dim
      "dynamic_batching": {"max_queue_delay_us": 500, "preferred_batch_size": [4, 8]},
      "compile": {"dims": {"batch": 1}, "shapes": {"x": [1, 3, 224, 224]}}   # for model.onnx
    }

Every field is optional; an unknown field is an error (a misspelt one would otherwise be
ignored without a word), with the closest known name suggested. The names follow Triton's
model configuration where it has the same notion, so its users recognize them.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: A model's config file, in its folder of the repository.
CONFIG_FILE = "config.json"
DEFAULT_MAX_QUEUE_SIZE = 64

FIELDS = ("name", "version_policy", "max_queue_size", "default_timeout_ms",
          "allow_request_timeout", "instances", "threads_per_instance", "max_batch_size",
          "dynamic_batching", "compile")
COMPILE_FIELDS = ("dims", "shapes")
BATCHING_FIELDS = ("max_queue_delay_us", "preferred_batch_size")


@dataclass(frozen=True)
class VersionPolicy:
    """Which of a model's version folders are served: the `latest` N (highest numbers), `all`,
    or the `specific` ones listed."""

    kind: str = "latest"
    count: int = 1
    versions: tuple[int, ...] = ()

    def select(self, available: list[int]) -> list[int]:
        """The versions to serve out of those found on disk (ascending)."""
        found = sorted(available)
        if self.kind == "all":
            return found
        if self.kind == "latest":
            return found[-self.count:] if found else []
        return [v for v in found if v in self.versions]

    def describe(self) -> str:
        if self.kind == "all":
            return "all versions"
        if self.kind == "latest":
            return f"the latest {self.count} version(s)"
        return "versions " + ", ".join(map(str, self.versions))


@dataclass(frozen=True)
class Batching:
    """How a version's requests are joined along dim 0 (config fields max_batch_size and
    dynamic_batching). `join` is False when dynamic_batching is absent: requests then carry
    a batch dim of up to max_batch_size rows but each runs alone, as in Triton."""

    max_batch_size: int
    join: bool = False
    max_queue_delay_s: float = 0.0
    preferred: tuple[int, ...] = ()

    @property
    def sizes(self) -> tuple[int, ...]:
        """The batch sizes a model.onnx is compiled for: the preferred ones, 1 and
        max_batch_size (ascending)."""
        return tuple(sorted({1, self.max_batch_size, *self.preferred}))


@dataclass(frozen=True)
class ModelConfig:
    """A model's serving settings (see the module docstring for the meaning of each)."""

    version_policy: VersionPolicy = field(default_factory=VersionPolicy)
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE
    default_timeout_ms: float | None = None
    allow_request_timeout: bool = True
    instances: int = 1
    threads_per_instance: int | None = None
    batching: Batching | None = None   # None: max_batch_size 0, no batch dim
    dims: dict[str, int] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


def load_config(path: Path, model_name: str) -> ModelConfig:
    """The config at `path` (model `model_name`'s config.json), or the defaults when there is
    no such file. Raises ConfigError naming the file and the field."""
    if not path.exists():
        return ModelConfig()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column "
                          f"{exc.colno}") from None
    return parse_config(data, str(path), model_name)


def parse_config(data: Any, where: str, model_name: str) -> ModelConfig:
    """A ModelConfig from config.json's decoded `data`; `where` names the file in errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object of settings, got "
                          f"{_json_type(data)}")
    _refuse_unknown(data, FIELDS, where, "")
    if "name" in data and data["name"] != model_name:
        raise ConfigError(f"{where}: field 'name' is {data['name']!r} but the model's folder "
                          f"is {model_name!r}; they must be the same (or leave 'name' out)")
    compile_options = data.get("compile", {})
    if not isinstance(compile_options, dict):
        raise ConfigError(f"{where}: field 'compile': expected an object with "
                          f"{' / '.join(COMPILE_FIELDS)}, got {_json_type(compile_options)}")
    _refuse_unknown(compile_options, COMPILE_FIELDS, where, "compile.")
    timeout = data.get("default_timeout_ms")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or timeout <= 0):
        raise ConfigError(f"{where}: field 'default_timeout_ms': expected a positive number of "
                          f"milliseconds or null (no timeout), got {json.dumps(timeout)}")
    allow = data.get("allow_request_timeout", True)
    if not isinstance(allow, bool):
        raise ConfigError(f"{where}: field 'allow_request_timeout': expected true or false, "
                          f"got {json.dumps(allow)}")
    threads = data.get("threads_per_instance")
    return ModelConfig(
        version_policy=_version_policy(data.get("version_policy"), where),
        max_queue_size=_positive_int(data, "max_queue_size", DEFAULT_MAX_QUEUE_SIZE, where),
        default_timeout_ms=None if timeout is None else float(timeout),
        allow_request_timeout=allow,
        instances=_positive_int(data, "instances", 1, where),
        threads_per_instance=None if threads is None else _positive_int(
            data, "threads_per_instance", 1, where),
        batching=_batching(data, where),
        dims=_dims(compile_options.get("dims", {}), where),
        shapes=_shapes(compile_options.get("shapes", {}), where))


def _version_policy(value: Any, where: str) -> VersionPolicy:
    expected = ('{"latest": {"num_versions": N}}, {"all": {}} or '
                '{"specific": {"versions": [1, 2]}}')
    if value is None:
        return VersionPolicy()
    if not isinstance(value, dict) or len(value) != 1:
        raise ConfigError(f"{where}: field 'version_policy': expected one of {expected}, got "
                          f"{json.dumps(value)}")
    (kind, body), = value.items()
    if kind not in ("latest", "all", "specific"):
        raise ConfigError(f"{where}: field 'version_policy': unknown policy {kind!r}; "
                          f"expected one of {expected}")
    if not isinstance(body, dict):
        raise ConfigError(f"{where}: field 'version_policy.{kind}': expected an object, got "
                          f"{_json_type(body)}")
    if kind == "all":
        _refuse_unknown(body, (), where, "version_policy.all.")
        return VersionPolicy("all")
    if kind == "latest":
        _refuse_unknown(body, ("num_versions",), where, "version_policy.latest.")
        return VersionPolicy("latest", count=_positive_int(
            body, "num_versions", 1, where, "version_policy.latest."))
    _refuse_unknown(body, ("versions",), where, "version_policy.specific.")
    versions = body.get("versions")
    if (not isinstance(versions, list) or not versions
            or not all(_is_int(v) and v >= 1 for v in versions)):
        raise ConfigError(f"{where}: field 'version_policy.specific.versions': expected a "
                          f"non-empty list of version numbers (positive integers), got "
                          f"{json.dumps(versions)}")
    return VersionPolicy("specific", versions=tuple(sorted(set(versions))))


def _batching(data: dict, where: str) -> Batching | None:
    """The batching settings, or None with max_batch_size 0 or absent (no batch dim)."""
    size = data.get("max_batch_size", 0)
    if not _is_int(size) or size < 0:
        raise ConfigError(f"{where}: field 'max_batch_size': expected a number of rows >= 0 "
                          f"(0: the model has no batch dim), got {json.dumps(size)}")
    dynamic = data.get("dynamic_batching")
    if dynamic is None:
        return Batching(size) if size else None
    if not isinstance(dynamic, dict):
        raise ConfigError(f"{where}: field 'dynamic_batching': expected an object with "
                          f"{' / '.join(BATCHING_FIELDS)}, got {_json_type(dynamic)}")
    _refuse_unknown(dynamic, BATCHING_FIELDS, where, "dynamic_batching.")
    if size == 0:
        raise ConfigError(f"{where}: field 'dynamic_batching' needs 'max_batch_size' of 1 or "
                          f"more (the rows a batch may hold); it is "
                          f"{json.dumps(data.get('max_batch_size', 0))}")
    delay = dynamic.get("max_queue_delay_us", 0)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
        raise ConfigError(f"{where}: field 'dynamic_batching.max_queue_delay_us': expected "
                          f"microseconds >= 0, got {json.dumps(delay)}")
    preferred = dynamic.get("preferred_batch_size", [])
    if not isinstance(preferred, list) or not all(
            _is_int(p) and 1 <= p <= size for p in preferred):
        raise ConfigError(f"{where}: field 'dynamic_batching.preferred_batch_size': expected "
                          f"a list of batch sizes from 1 to max_batch_size ({size}), got "
                          f"{json.dumps(preferred)}")
    return Batching(size, join=True, max_queue_delay_s=float(delay) / 1e6,
                    preferred=tuple(sorted(set(preferred))))


def _dims(value: Any, where: str) -> dict[str, int]:
    if not isinstance(value, dict) or not all(_is_int(v) and v >= 1 for v in value.values()):
        raise ConfigError(f"{where}: field 'compile.dims': expected an object of symbolic "
                          f"dim -> size (a positive integer), e.g. {{\"batch\": 1}}, got "
                          f"{json.dumps(value)}")
    return dict(value)


def _shapes(value: Any, where: str) -> dict[str, tuple[int, ...]]:
    if not isinstance(value, dict) or not all(
            isinstance(s, list) and all(_is_int(d) and d >= 0 for d in s)
            for s in value.values()):
        raise ConfigError(f"{where}: field 'compile.shapes': expected an object of input name "
                          f"-> shape (a list of sizes), e.g. {{\"x\": [1, 3, 224, 224]}}, got "
                          f"{json.dumps(value)}")
    return {name: tuple(shape) for name, shape in value.items()}


def _positive_int(data: dict, name: str, default: int, where: str, scope: str = "") -> int:
    value = data.get(name, default)
    if not _is_int(value) or value < 1:
        raise ConfigError(f"{where}: field '{scope}{name}': expected a positive integer, got "
                          f"{json.dumps(value)}")
    return int(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _refuse_unknown(data: dict, known: tuple[str, ...], where: str, scope: str) -> None:
    for name in data:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{scope}{close[0]}'?)" if close else ""
        known_text = ", ".join(known) if known else "none"
        raise ConfigError(f"{where}: unknown field '{scope}{name}'{hint}; the fields here are: "
                          f"{known_text}")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
