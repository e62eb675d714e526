"""`kiln serve`: a model server for compiled artifacts, speaking the Open Inference Protocol
(KServe v2) over REST and gRPC, so existing clients (tritonclient, KServe's SDK, curl) work
as they are. See docs/serving.md.

- repository.py: the model repository (MODEL/VERSION/model.so or model.onnx) and loading
- artifacts.py: a version's artifacts: found in its folder, or model.onnx compiled into the
  cache (once per batch size with batching)
- config.py: a model's config.json, validated field by field
- protocol.py: the protocol's datatypes, requests and responses (JSON and binary tensors)
- http.py: the ASGI application (the endpoints); server.py: uvicorn, start-up and draining
- grpc_service.py: inference.GRPCInferenceService (inference.proto, loaded by
  grpc_messages.py), through the same checks, queue and metrics as http.py
- scheduler.py: each version's bounded queue and worker threads; budget.py: the thread budget
- batching.py: the dynamic batcher's arithmetic (joining, padding, splitting requests)
- metrics.py: Prometheus metrics; stats.py: the statistics extension; accesslog.py: access logs

The HTTP and gRPC stacks (uvicorn, grpcio, protobuf, prometheus-client) are the optional
extra `kiln-aot[serve]`; this module imports them only when serving starts.
"""

from __future__ import annotations

import importlib.util

from .errors import ConfigError, MissingExtraError, RequestError, ServeError

__all__ = ["ConfigError", "MissingExtraError", "RequestError", "ServeError", "main",
           "require_extras"]

#: import name -> the distribution that provides it
EXTRAS = {"uvicorn": "uvicorn", "prometheus_client": "prometheus-client"}
GRPC_EXTRAS = {"grpc": "grpcio", "google.protobuf": "protobuf"}


def require_extras(grpc: bool = False) -> None:
    """Raise MissingExtraError, with the pip command, if the serving packages are absent
    (with `grpc`, those of the gRPC endpoint too)."""
    wanted = {**EXTRAS, **(GRPC_EXTRAS if grpc else {})}
    missing = [dist for module, dist in wanted.items() if not _installed(module)]
    if missing:
        hint = " (or serve REST only with --grpc-port -1)" if grpc and not any(
            dist in missing for dist in EXTRAS.values()) else ""
        raise MissingExtraError(f"kiln serve needs {' and '.join(missing)}, which are not "
                                f"installed; install them with: pip install 'kiln-aot[serve]'"
                                + hint)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:   # the parent package (google) is missing
        return False


def main(source: str, host: str = "127.0.0.1", http_port: int = 8000,
         threads: int | None = None, grace_period: float = 25.0,
         max_body_mb: float = 64.0, strict_readiness: bool = False,
         cache_dir: str | None = None, poll_repository: float | None = None,
         access_log: str | None = None, grpc_port: int | None = 8001) -> int:
    """Serve `source` (a repository folder, a model.so or a model.onnx) until SIGTERM or
    SIGINT; returns the exit status. `grpc_port` None or negative: no gRPC endpoint. Raises
    ConfigError for a bad source or option."""
    if grpc_port is not None and grpc_port < 0:
        grpc_port = None
    require_extras(grpc=grpc_port is not None)
    from .server import ServeOptions, run

    if max_body_mb <= 0:
        raise ConfigError(f"--max-body-mb: expected a positive size, got {max_body_mb}")
    return run(source, ServeOptions(host=host, http_port=http_port, grpc_port=grpc_port,
                                    threads=threads,
                                    grace_period=grace_period,
                                    max_body_bytes=int(max_body_mb * (1 << 20)),
                                    strict_readiness=strict_readiness, cache_dir=cache_dir,
                                    poll_repository=poll_repository, access_log=access_log))
