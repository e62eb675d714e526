"""The errors of `kiln serve`: a broken repository or config (raised at load, shown in the
readiness answers) and a bad or refused request (answered with its HTTP status)."""

from __future__ import annotations

from ..compiler.errors import KilnError


class ServeError(KilnError):
    """Base of the model server's errors."""


class ConfigError(ServeError, ValueError):
    """A model repository, a config.json or a server option is malformed: the message names
    the file (or option) and the field, and what is expected there."""


class LoadError(ServeError):
    """A model version cannot be served; the message says why (shown as its reason)."""


class MissingExtraError(ServeError, ImportError):
    """`kiln serve` needs packages the base install lacks (uvicorn, prometheus-client)."""


class RequestError(ServeError):
    """A request the server refuses; `status` is the HTTP status it is answered with
    (400 bad request, 404 unknown model or version, 413 body too large, 503 unavailable or
    overloaded, 504 timed out in the queue). `retry_after` (seconds) is sent as the
    Retry-After header when given."""

    def __init__(self, status: int, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class BadRequest(RequestError):
    """400: the request does not fit the protocol or the model."""

    def __init__(self, message: str):
        super().__init__(400, message)


class NotFound(RequestError):
    """404: no such model, version or endpoint."""

    def __init__(self, message: str):
        super().__init__(404, message)


class Unavailable(RequestError):
    """503: the model is not ready, its queue is full, or the server is shutting down."""

    def __init__(self, message: str, retry_after: float = 1.0):
        super().__init__(503, message, retry_after)


class QueueTimeout(RequestError):
    """504: the request's timeout passed while it waited in the queue; it was not computed."""

    def __init__(self, message: str):
        super().__init__(504, message)
