"""The life cycle of `kiln serve`: listen at once (REST, and gRPC when a port is given, both
on one event loop), load the repository in the background (live at once, ready when
loaded), serve, and on SIGTERM or SIGINT drain before exiting.

Draining: readiness turns false at once (a load balancer stops sending new requests), new
inference requests are refused with 503 (a client retries another replica), the queued and
running ones finish and are answered, then the listener closes and the process exits: all
within the grace period (--grace-period), after which the requests still queued are
answered 503 uncomputed and the runs in progress get a last second. A second signal exits
at once. gRPC requests are counted and refused by the same
application, so the drain covers them; the gRPC listener closes after the HTTP one.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Coroutine, Iterator

import uvicorn

from .accesslog import AccessLog
from .budget import ThreadBudget
from .errors import ConfigError
from .http import DEFAULT_MAX_BODY_BYTES, InferenceApp
from .metrics import Metrics
from .repository import Repository


@dataclass
class ServeOptions:
    """The server's settings (the command line's flags)."""

    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int | None = None          # None: no gRPC (the command line's default is 8001)
    threads: int | None = None            # runtime thread budget; None: the usable cores
    grace_period: float = 25.0            # seconds to drain after SIGTERM
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    strict_readiness: bool = False        # ready only when every model is
    cache_dir: str | None = None          # compiled ONNX models (see Repository)
    poll_repository: float | None = None  # seconds between looks at the repository folder
    access_log: str | None = None         # a file, or "-" for stderr; None: no access log


class _Uvicorn(uvicorn.Server):
    """uvicorn's server without its own signal handling: ModelServer drains first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ModelServer:
    """`kiln serve` for the repository (or single model file) at `source`."""

    def __init__(self, source: str | Path, options: ServeOptions | None = None,
                 log: Callable[[str], None] | None = None):
        self.options = options or ServeOptions()
        self.log = log or _print
        if not 0 <= self.options.http_port <= 65535:
            raise ConfigError(f"--http-port: expected 0..65535, got {self.options.http_port}")
        grpc_port = self.options.grpc_port
        if grpc_port is not None and not 0 <= grpc_port <= 65535:
            raise ConfigError(f"--grpc-port: expected 0..65535 (or -1: no gRPC), got "
                              f"{grpc_port}")
        if self.options.grace_period < 0:
            raise ConfigError(f"--grace-period: expected seconds >= 0, got "
                              f"{self.options.grace_period}")
        poll = self.options.poll_repository
        if poll is not None and not poll > 0:
            raise ConfigError(f"--poll-repository: expected a positive number of seconds, "
                              f"got {poll}")
        self.budget = ThreadBudget(self.options.threads)
        self.metrics = Metrics(self.budget.total)
        self.repository = Repository(source, self.budget, self.options.cache_dir,
                                     hooks=self.metrics, log=self.log)
        self.access_log = None if self.options.access_log is None else \
            AccessLog(self.options.access_log)
        self.app = InferenceApp(self.repository, self.metrics, self.options.max_body_bytes,
                                self.options.strict_readiness, log=self.log,
                                access_log=self.access_log)
        self._stopping = threading.Event()
        self.port: int | None = None
        self.grpc_port: int | None = None  # the gRPC listener's port, once listening
        self.started = threading.Event()   # set once listening (self.port is known)
        self.loaded = threading.Event()    # set once the first load is done
        self._loop: asyncio.AbstractEventLoop | None = None
        self._uvicorn: _Uvicorn | None = None
        self._draining: asyncio.Task | None = None
        self._grpc = None                  # the grpc.aio server, when serving gRPC

    def _bind(self) -> socket.socket:
        host, port = self.options.host, self.options.http_port
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            # IPPROTO_TCP spelled out: asyncio turns Nagle's algorithm off only on sockets
            # that say they are TCP, and with it on, a response written in two parts waits
            # for the client's delayed ACK (40 ms a request)
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from None
        sock.set_inheritable(True)
        return sock

    async def serve(self, install_signals: bool = True) -> None:
        """Listen, load the models, serve until shutdown() (or a signal) and the drain end."""
        self._loop = asyncio.get_running_loop()
        sock = self._bind()
        self.port = sock.getsockname()[1]
        if self.options.grpc_port is not None:
            from .grpc_service import create_server

            try:
                self._grpc, self.grpc_port = create_server(
                    self.app, self.options.host, self.options.grpc_port,
                    self.options.max_body_bytes)
            except ConfigError:
                sock.close()
                raise
        self.repository.discover()
        default = self.repository.plan_threads()
        self.log(f"kiln serve: runtime thread budget {self.budget.total} (--threads); "
                 f"{default} per instance unless config.json sets threads_per_instance")
        # uvicorn's own graceful wait comes after _drain has used the grace period: it only
        # lets the last answers go out, so that the whole exit stays within the grace period
        # and a second or so
        config = uvicorn.Config(self.app, lifespan="off", log_level="warning",
                                access_log=False, timeout_graceful_shutdown=1.0, backlog=2048)
        self._uvicorn = _Uvicorn(config)
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self.shutdown)
        loader = threading.Thread(target=self._load, name="kiln-serve loader", daemon=True)
        serving = asyncio.create_task(self._uvicorn.serve(sockets=[sock]))
        while not self._uvicorn.started and not serving.done():
            await asyncio.sleep(0.005)
        if self._uvicorn.started:
            host = self.options.host if ":" not in self.options.host \
                else f"[{self.options.host}]"
            self.log(f"kiln serve: listening on http://{host}:{self.port}")
            if self._grpc is not None:
                await self._grpc.start()
                self.log(f"kiln serve: listening on grpc://{host}:{self.grpc_port} "
                         f"(inference.GRPCInferenceService)")
            self.started.set()
            loader.start()
        try:
            await serving
        finally:
            sock.close()
            self._stopping.set()
            if self._grpc is not None:   # the drain is done: only the last answers go out
                await self._grpc.stop(1.0)
            await asyncio.get_running_loop().run_in_executor(None, self.repository.close)
            if self.access_log is not None:
                self.access_log.close()
            self.log("kiln serve: stopped")

    def _load(self) -> None:
        try:
            self.repository.load_all()
        except Exception as exc:   # the folder vanished under us, or a bug: say it, serve on
            self.log(f"kiln serve: loading the repository failed: {type(exc).__name__}: "
                     f"{exc}")
        self.app.loaded = True
        self.loaded.set()
        if not self.repository.models():
            self.log(f"kiln serve: {self.repository.source} holds no model folders (expected "
                     f"MODEL/VERSION/model.so or model.onnx); load them with the repository "
                     f"API once they are there")
        ready = sum(1 for m in self.repository.models() if m.ready_versions)
        self.log(f"kiln serve: {ready} of {len(self.repository.models())} model(s) ready; "
                 f"{self.budget.used} of {self.budget.total} runtime threads in use")
        if self.options.poll_repository is not None and not self.repository.single:
            self._poll(self.options.poll_repository)

    def _poll(self, seconds: float) -> None:
        """Every `seconds`, bring the served models up to date with the repository folder
        (Repository.poll: new versions loaded beside the serving ones, then swapped in)."""
        self.log(f"kiln serve: polling {self.repository.source} every {seconds:g} s")
        while not self._stopping.wait(seconds) and not self.app.draining:
            try:
                for name in self.repository.poll():
                    model = self.repository.model(name)
                    versions = ", ".join(str(v.version) for v in model.ready_versions)
                    self.log(f"model '{name}': reloaded from the repository; serving "
                             f"version(s) {versions or 'none'}"
                             + (f"; failed: {model.load_error}" if model.load_error else ""))
            except Exception as exc:   # a folder vanished mid-look, say: try again next time
                self.log(f"kiln serve: polling the repository failed: "
                         f"{type(exc).__name__}: {exc}")

    def shutdown(self) -> None:
        """Begin draining (from the event loop's thread; see request_shutdown otherwise).
        A second call stops at once."""
        if self._uvicorn is None:
            return
        if self._draining is not None:
            self.log("kiln serve: stopping now")
            self._uvicorn.should_exit = self._uvicorn.force_exit = True
            return
        self.app.draining = True
        self._draining = asyncio.ensure_future(self._drain())

    def request_shutdown(self) -> None:
        """shutdown(), from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.shutdown)

    async def _drain(self) -> None:
        grace = self.options.grace_period
        self.log(f"kiln serve: shutting down: not ready; finishing "
                 f"{self.app.active} request(s) in flight (at most {grace:g} s)")
        end = time.monotonic() + grace
        while (self.app.active or self.repository.busy()) and time.monotonic() < end:
            await asyncio.sleep(0.01)
        left = self.app.active
        if left:
            refused = self.repository.refuse_queued(
                "the server is shutting down and its grace period passed before this request "
                "was computed; send it to another replica")
            self.log(f"kiln serve: the grace period passed with {left} request(s) unanswered: "
                     f"{refused} still queued refused with 503, the rest are running")
        self._uvicorn.should_exit = True


def _print(line: str) -> None:
    print(line, flush=True)


def run(source: str | Path, options: ServeOptions | None = None) -> int:
    """Serve until a signal ends it; the exit status (0 after a clean drain)."""
    server = ModelServer(source, options)
    run_loop(server.serve())
    return 0


def run_loop(main: Coroutine) -> None:
    """Run `main` on a new event loop: uvloop's where it is installed (faster), else
    asyncio's."""
    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


class BackgroundServer:
    """A ModelServer on its own thread and event loop (for tests and embedding): started
    by the constructor, stopped (drained) by stop() or the with block's end."""

    def __init__(self, source: str | Path, options: ServeOptions | None = None,
                 log: Callable[[str], None] | None = None, timeout: float = 60.0):
        self.server = ModelServer(source, options, log=log or (lambda line: None))
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kiln-serve", daemon=True)
        self._thread.start()
        if not self.server.started.wait(timeout) or not self.server.loaded.wait(timeout):
            raise RuntimeError(f"the server did not start within {timeout} s"
                               + (f": {self.error}" if self.error else ""))

    def _run(self) -> None:
        try:
            run_loop(self.server.serve(install_signals=False))
        except BaseException as exc:
            self.error = exc
            self.server.started.set()
            self.server.loaded.set()

    @property
    def url(self) -> str:
        return f"{self.server.options.host}:{self.server.port}"

    @property
    def grpc_url(self) -> str | None:
        """host:port of the gRPC listener (None without one)."""
        port = self.server.grpc_port
        return None if port is None else f"{self.server.options.host}:{port}"

    def stop(self, timeout: float = 60.0) -> None:
        self.server.request_shutdown()
        self._thread.join(timeout)

    def __enter__(self) -> "BackgroundServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
