"""The HTTP side of `kiln serve`: a plain ASGI application (served by uvicorn, server.py)
speaking the Open Inference Protocol's REST API.

    GET  /v2                                    server metadata
    GET  /v2/health/live, /v2/health/ready      Kubernetes probes
    GET  /v2/models/{m}[/versions/{v}]          model metadata
    GET  /v2/models/{m}[/versions/{v}]/ready    model readiness (the reason when not)
    POST /v2/models/{m}[/versions/{v}]/infer    inference: JSON and binary tensor data
    GET  /v2/models[/{m}[/versions/{v}]]/stats  statistics extension
    POST /v2/repository/index                   repository extension: index, load, unload
    POST /v2/repository/models/{m}/load|unload
    GET  /metrics                               Prometheus metrics

Errors are JSON objects {"error": "..."}: 400 for a bad request (naming the input and what
was expected), 404 for an unknown model, version or endpoint, 413 for a body over the
limit, 503 with Retry-After when the model is not ready, its queue is full or the server is
shutting down, 504 when a request's timeout passed in the queue, 500 when a model's run
failed. No request can take the server down: everything it raises becomes an answer.

Parsing and encoding happen on the event loop; the models run on their schedulers' worker
threads (the runtime releases the GIL), so probes are answered while models compute.
"""

from __future__ import annotations

import asyncio
import sys
import time
import traceback
import zlib
from typing import Any, Awaitable, Callable, TypeVar

import numpy as np

from .. import __version__
from . import jsoncodec
from .accesslog import AccessLog
from .errors import BadRequest, NotFound, QueueTimeout, RequestError, Unavailable
from .metrics import Metrics
from .protocol import HEADER_LENGTH, InferRequest, encode_infer_response, \
    parse_infer_request, tensor_metadata
from .repository import ModelVersion, Repository
from .scheduler import Timings

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
#: status, body (bytes, or the pieces to write one after another) and headers
Answer = tuple[int, bytes | list[bytes | memoryview], dict[str, str]]
T = TypeVar("T")

EXTENSIONS = ["binary_tensor_data", "model_repository", "statistics"]
DEFAULT_MAX_BODY_BYTES = 64 << 20
_JSON = "application/json"
#: where a request's binary tensor data starts in a body read in several messages
_ALIGNMENT = 64
#: response pieces below this many bytes are joined into one message
_SMALL_PIECE = 64 << 10


class MethodNotAllowed(RequestError):
    """405: the endpoint exists but takes another method (sent back in Allow)."""

    def __init__(self, method: str, path: str, allowed: str):
        super().__init__(405, f"{method} is not allowed on {path}; use {allowed}")
        self.allowed = allowed


class PayloadTooLarge(RequestError):
    """413: the body is over --max-body-mb (refused before reading it when declared)."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body is over the server's limit of {limit} bytes "
                              f"(kiln serve --max-body-mb)")


def _json(status: int, obj: Any, headers: dict[str, str] | None = None) -> Answer:
    return status, jsoncodec.dumps(obj), {"content-type": _JSON, **(headers or {})}


class InferenceApp:
    """The ASGI application over a loaded `repository`. The server sets `loaded` once the
    first load of the repository is done and `draining` when it starts shutting down;
    `active` counts inference requests between arrival and answer. `access_log`, when
    given, gets one record per inference request."""

    def __init__(self, repository: Repository, metrics: Metrics,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, strict_readiness: bool = False,
                 log: Callable[[str], None] = print, access_log: AccessLog | None = None):
        self.repository = repository
        self.access_log = access_log
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.strict_readiness = strict_readiness
        self.log = log
        self.loaded = False
        self.draining = False
        self.active = 0
        metrics.in_flight.set_function(lambda: self.active)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            status, body, headers = await self._dispatch(scope, receive)
        except RequestError as exc:
            extra = {}
            if exc.retry_after is not None:
                extra["retry-after"] = str(int(exc.retry_after))
            if isinstance(exc, MethodNotAllowed):
                extra["allow"] = exc.allowed
            status, body, headers = _json(exc.status, {"error": exc.message}, extra)
        except Exception as exc:   # a bug: answer it, log it, keep serving
            traceback.print_exc(file=sys.stderr)
            status, body, headers = _json(500, {"error": f"internal error in kiln serve: "
                                                         f"{type(exc).__name__}: {exc}"})
        self.log_access(scope, status)
        pieces = _coalesced(body) if isinstance(body, list) else [body]
        raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw_headers.append((b"content-length", str(sum(map(len, pieces))).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        for piece in pieces[:-1]:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": pieces[-1]})

    def log_access(self, record: dict[str, Any], status: int) -> None:
        """One access-log line for an inference request whose `record` `infer` filled in
        (nothing for other endpoints, or without --access-log). `status` is the HTTP status
        of the answer (for gRPC, the one its error would have had over REST)."""
        if self.access_log is not None and "kiln.model" in record:
            timings = record.get("kiln.timings")
            self.access_log.write(record["kiln.model"], record.get("kiln.version"), status,
                                  timings and timings.queue, timings and timings.compute,
                                  timings and timings.batch)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- routing ----------------------------------------------------------------------------

    async def _dispatch(self, scope: Scope, receive: Receive) -> Answer:
        method, path = scope["method"], scope["path"]
        parts = [p for p in path.split("/") if p]

        def only(allowed: str) -> None:
            if method != allowed and not (allowed == "GET" and method == "HEAD"):
                raise MethodNotAllowed(method, path, allowed)

        if parts == ["metrics"]:
            only("GET")
            body, content_type = self.metrics.render()
            return 200, body, {"content-type": content_type}
        if not parts or parts[0] != "v2":
            raise NotFound(f"no endpoint {path}; the Open Inference Protocol's endpoints are "
                           f"under /v2 (and metrics at /metrics)")
        rest = parts[1:]
        if not rest:
            only("GET")
            return _json(200, {"name": "kiln", "version": __version__,
                               "extensions": EXTENSIONS})
        if rest == ["health", "live"]:
            only("GET")
            return _json(200, {"live": True})
        if rest == ["health", "ready"]:
            only("GET")
            return self._server_ready()
        if rest[0] == "repository":
            return await self._repository(method, path, rest[1:], scope, receive)
        if rest == ["models", "stats"]:
            only("GET")
            return _json(200, {"model_stats": self.statistics(None, None)})
        if rest[0] == "models" and len(rest) >= 2:
            name, tail, version = rest[1], rest[2:], None
            if tail[:1] == ["versions"]:
                if len(tail) < 2:
                    raise NotFound(f"no endpoint {path}: a version number follows /versions/")
                version, tail = tail[1], tail[2:]
            if not tail:
                only("GET")
                return _json(200, self.model_metadata(name, version))
            if tail == ["ready"]:
                only("GET")
                return self._model_ready(name, version)
            if tail == ["infer"]:
                only("POST")
                return await self._infer(name, version, scope, receive)
            if tail == ["stats"]:
                only("GET")
                return _json(200, {"model_stats": self.statistics(name, version)})
        raise NotFound(f"no endpoint {path}")

    # -- health and metadata ----------------------------------------------------------------

    def readiness(self) -> tuple[bool, str, dict[str, str] | None]:
        """Whether the server is ready (REST's /v2/health/ready, gRPC's ServerReady), why not
        when it is not, and the models not ready with their reasons (None while loading or
        shutting down)."""
        if self.draining:
            return False, "the server is shutting down", None
        if not self.loaded:
            return False, "the models are still loading", None
        models = self.repository.models()
        not_ready = {m.name: m.why_not_ready() for m in models if not m.ready_versions}
        ready = not not_ready if self.strict_readiness else len(not_ready) < len(models)
        if ready:
            return True, "", not_ready
        why = "no model is ready" if not self.strict_readiness else \
            "not every model is ready (--strict-readiness)"
        return False, why, not_ready

    def _server_ready(self) -> Answer:
        ready, why, not_ready = self.readiness()
        if ready:
            return _json(200, {"ready": True, "not_ready": not_ready})
        answer = {"ready": False, "error": why}
        return _json(400, answer if not_ready is None else {**answer, "not_ready": not_ready})

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        """The metadata object of model `name` (`version`, or its latest ready one): REST's
        GET /v2/models/{m} and gRPC's ModelMetadata alike. NotFound for an unknown model
        or version."""
        served = self.repository.version(name, version)
        model = self.repository.model(name)
        return {"name": name, "versions": [str(v) for v in sorted(model.versions)],
                "platform": "kiln", "inputs": [tensor_metadata(t) for t in served.inputs],
                "outputs": [tensor_metadata(t) for t in served.outputs]}

    def _model_ready(self, name: str, version: str | None) -> Answer:
        ready, reason = self.model_readiness(name, version)
        if ready:
            answer = {"name": name, "ready": True}
            load_error = self.repository.model(name).load_error
            if load_error:   # what serves is what loaded before
                answer["reason"] = f"the last load failed: {load_error}"
            return _json(200, answer)
        return _json(400, {"name": name, "ready": False, "error": f"model {name!r} is not "
                                                                  f"ready: {reason}"})

    def model_readiness(self, name: str, version: str | None) -> tuple[bool, str]:
        """Whether model `name` (`version`, or any version if None) is ready, and why not;
        NotFound for an unknown model or version."""
        model = self.repository.model(name)
        if version is None:
            ready, reason = bool(model.ready_versions), model.why_not_ready()
        else:
            number = int(version) if version.isdigit() else None
            found = model.versions.get(number) if number is not None else None
            if found is None:
                raise NotFound(f"model {name!r} has no version {version!r}; its versions "
                               f"are: {', '.join(map(str, sorted(model.versions))) or 'none'}")
            ready = found.ready
            reason = f"{found.state.lower()}: {found.reason}" if found.reason else \
                found.state.lower()
        return ready, reason

    def statistics(self, name: str | None, version: str | None) -> list[dict[str, Any]]:
        """The statistics extension's model_stats: of every version of every model (`name`
        None), of model `name`, or of its `version`; REST and gRPC alike. NotFound for an
        unknown model or version."""
        if name is None:
            return [v.stats.as_dict(m.name, n) for m in self.repository.models()
                    for n, v in sorted(m.versions.items())]
        model = self.repository.model(name)
        versions = sorted(model.versions.items())
        if version is not None:
            versions = [(n, v) for n, v in versions if str(n) == version]
            if not versions:
                known = ", ".join(str(v) for v in sorted(model.versions)) or "none"
                raise NotFound(f"model {name!r} has no version {version!r}; its versions "
                               f"are: {known}")
        return [v.stats.as_dict(name, n) for n, v in versions]

    # -- the repository extension -----------------------------------------------------------

    async def _repository(self, method: str, path: str, rest: list[str], scope: Scope,
                          receive: Receive) -> Answer:
        if rest == ["index"]:
            if method != "POST":
                raise MethodNotAllowed(method, path, "POST")
            body = _decode_object(await self._body(scope, receive), "the index request")
            ready = body.get("ready", False)
            if not isinstance(ready, bool):
                raise BadRequest("the index request's 'ready' must be true or false")
            return _json(200, self.repository.index(ready_only=ready))
        if len(rest) == 3 and rest[0] == "models" and rest[2] in ("load", "unload"):
            if method != "POST":
                raise MethodNotAllowed(method, path, "POST")
            _decode_object(await self._body(scope, receive), f"the {rest[2]} request")
            name = rest[1]
            loop = asyncio.get_running_loop()
            if rest[2] == "unload":
                await loop.run_in_executor(None, self.repository.unload, name)
                self.log(f"model '{name}': unloaded")
                return _json(200, {})
            if self.draining:
                raise Unavailable("the server is shutting down")
            model = await loop.run_in_executor(None, self.repository.load, name)
            if not model.ready_versions:
                raise BadRequest(f"failed to load model {name!r}: {model.why_not_ready()}")
            if model.load_error:
                raise BadRequest(f"failed to load model {name!r}: {model.load_error}; what "
                                 f"served before still serves")
            return _json(200, {})
        raise NotFound(f"no endpoint {path}")

    # -- inference --------------------------------------------------------------------------

    async def _infer(self, name: str, version: str | None, scope: Scope,
                     receive: Receive) -> Answer:
        async def decode(served: ModelVersion) -> InferRequest:
            body = await self._body(scope, receive)
            return parse_infer_request(body, _header(scope, HEADER_LENGTH), served.inputs,
                                       served.outputs)

        def encode(served: ModelVersion, request: InferRequest,
                   outputs: dict[str, np.ndarray]) -> Answer:
            body, headers = encode_infer_response(name, str(served.version), request.id,
                                                  outputs, request.outputs,
                                                  request.binary_output)
            return 200, body, headers

        return await self.infer(name, version, decode, encode, record=scope)

    async def infer(self, name: str, version: str | None,
                    decode: Callable[[ModelVersion], Awaitable[InferRequest]],
                    encode: Callable[[ModelVersion, InferRequest, dict[str, np.ndarray]], T],
                    record: dict[str, Any] | None = None) -> T:
        """One inference request to model `name` (`version`, or None for its latest ready
        one), from REST or gRPC alike, so that both get the same refusals, queue, metrics
        and statistics: `decode` reads and checks the request against the version served
        (raising RequestError), `encode` turns the outputs into the protocol's answer.
        Raises RequestError for a refused or failed request (recorded as its outcome).
        `record` receives what the access log writes: "kiln.model", "kiln.version" and,
        once computed, "kiln.timings"."""
        start = time.perf_counter()
        record = {} if record is None else record
        record["kiln.model"], record["kiln.version"] = name, version
        try:
            served = self.repository.acquire(name, version)
        except Unavailable:
            self.metrics.outcome(name, version or "", "rejected")
            raise
        label = str(served.version)
        record["kiln.version"] = label
        if self.draining:
            served.release()
            self.metrics.outcome(name, label, "rejected")
            raise Unavailable("the server is shutting down; send the request to another "
                              "replica")
        self.active += 1
        try:
            try:
                request = await decode(served)
            except RequestError:
                self.metrics.outcome(name, label, "invalid")
                raise
            scheduler = served.scheduler
            if scheduler is None:
                self.metrics.outcome(name, label, "rejected")
                raise Unavailable(f"{served.label} was unloaded; retry")
            timeout = self._timeout(served, request.timeout_us)
            try:
                outputs, timings = await scheduler.infer(request.inputs, timeout)
            except Unavailable:
                self.metrics.outcome(name, label, "rejected")
                raise
            except BadRequest:   # a batch outside 1..max_batch_size
                self.metrics.outcome(name, label, "invalid")
                raise
            except QueueTimeout:
                self._answered(served, "timed_out", start)
                raise
            except Exception as exc:   # the model's run failed: this request's answer only
                self._answered(served, "failed", start)
                raise RequestError(500, f"{served.label} failed to run: {exc}") from None
            answer = encode(served, request, outputs)
            self._answered(served, "success", start, timings)
            record["kiln.timings"] = timings
            return answer
        finally:
            served.release()
            self.active -= 1

    def _answered(self, served: ModelVersion, outcome: str, start: float,
                  timings: Timings | None = None) -> None:
        """Count a request that reached `served`'s queue, in the metrics (its outcome and,
        for a success, its timings) and in the statistics extension (success or fail), in
        one place so that the two always agree."""
        total = time.perf_counter() - start
        label = str(served.version)
        self.metrics.outcome(served.model, label, outcome)
        if timings is not None:
            self.metrics.timings(served.model, label, timings.queue, timings.compute, total)
        served.stats.finished(outcome == "success", total, timings and timings.queue)

    @staticmethod
    def _timeout(served: ModelVersion, timeout_us: float | None) -> float | None:
        """Seconds the request may wait in the queue: its own timeout if given and allowed,
        else its model's default."""
        if timeout_us is not None and served.config.allow_request_timeout:
            return timeout_us / 1e6
        default = served.config.default_timeout_ms
        return None if default is None else default / 1e3

    async def _body(self, scope: Scope, receive: Receive) -> bytes | memoryview:
        """The request body, refused with 413 past the limit (before reading it when the
        Content-Length says so), decompressed if its Content-Encoding is gzip or deflate.

        A body of one message is that message's bytes. One of several is joined into a
        buffer placed so that its binary tensor data (after the Inference-Header-Content-
        Length bytes of JSON) starts on a 64-byte boundary: the inputs are then views on
        it that the runtime takes as they are, where it copies a misaligned one."""
        limit = self.max_body_bytes
        declared = _header(scope, "content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise PayloadTooLarge(limit)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("the client went away before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else _joined(chunks, _header(scope, HEADER_LENGTH))
        encoding = (_header(scope, "content-encoding") or "identity").strip().lower()
        if encoding == "identity":
            return body
        if encoding not in ("gzip", "deflate"):
            raise BadRequest(f"Content-Encoding {encoding!r} is not supported (gzip, deflate "
                             f"or none)")
        inflater = zlib.decompressobj(zlib.MAX_WBITS | (16 if encoding == "gzip" else 0))
        try:
            plain = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise BadRequest(f"the body is not valid {encoding} data: {exc}") from None
        if len(plain) > limit:
            raise PayloadTooLarge(limit)
        return plain


def _joined(chunks: list[bytes], header_length: str | None) -> memoryview:
    """`chunks` copied into one buffer, placed so that byte `header_length` (where the
    binary tensor data starts, when the header is a byte count) is 64-byte aligned."""
    offset = int(header_length) if header_length is not None and \
        header_length.strip().isdigit() else 0
    size = sum(map(len, chunks))
    block = np.empty(size + _ALIGNMENT, np.uint8)
    start = -(block.ctypes.data + offset) % _ALIGNMENT
    body = memoryview(block)[start:start + size]
    filled = 0
    for chunk in chunks:
        body[filled:filled + len(chunk)] = chunk
        filled += len(chunk)
    return body


def _coalesced(pieces: list[bytes | memoryview]) -> list[bytes | memoryview]:
    """A response's pieces as the messages to send: runs of small pieces joined (a message
    is a write to the socket, which costs more than copying a few kilobytes), large ones as
    they are."""
    messages: list[bytes | memoryview] = []
    small: list[bytes | memoryview] = []
    for piece in pieces:
        if len(piece) < _SMALL_PIECE:
            small.append(piece)
            continue
        if small:
            messages.append(b"".join(small))
            small = []
        messages.append(piece)
    if small:
        messages.append(b"".join(small))
    return messages


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode("latin-1")
    for key, value in scope["headers"]:
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None


def _decode_object(body: bytes | memoryview, what: str) -> dict:
    if not bytes(body).strip():
        return {}
    try:
        value = jsoncodec.loads(body)
    except jsoncodec.NotJSON as exc:
        raise BadRequest(f"{what} is {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value
