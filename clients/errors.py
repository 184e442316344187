"""The one place that maps transport errors onto the client errors of `maas.base.errors`."""

from __future__ import annotations

import asyncio
import http.client
import importlib
import re

from tritonclient.utils import InferenceServerException

from maas.base.errors import (
    AuthenticationError,
    ClientError,
    InferenceFailedError,
    InferenceTimeoutError,
    InvalidInputError,
    ModelNotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerOverloadedError,
    ServerUnavailableError,
)


def _optional_types(*names: tuple[str, str]) -> tuple[type[BaseException], ...]:
    """Exception classes from optional transport libraries; absent libraries add nothing."""
    found: list[type[BaseException]] = []
    for module_name, attribute in names:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found.append(getattr(module, attribute))
    return tuple(found)


# What the transports really raise (seen against tritonserver 2.51): the sync HTTP client
# (geventhttpclient) raises socket TimeoutError on network_timeout, aiohttp raises TimeoutError
# subclasses, and tritonclient's own greenlet waits raise gevent.Timeout, a BaseException.
_TIMEOUT_TYPES: tuple[type[BaseException], ...] = (
    TimeoutError,
    asyncio.TimeoutError,  # a distinct class before Python 3.11
    *_optional_types(("gevent", "Timeout")),
)

# OSError covers refused/reset connections and DNS failures; http.client.HTTPException covers
# geventhttpclient's HTTPConnectionClosed and aiohttp.ClientConnectionError its
# ServerDisconnectedError, both raised when the server dies mid-request.
_CONNECTION_TYPES: tuple[type[BaseException], ...] = (
    OSError,
    http.client.HTTPException,
    *_optional_types(("aiohttp", "ClientConnectionError")),
)

#: Exceptions a transport call may raise that callers should pass to `map_error`.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (Exception, *_TIMEOUT_TYPES)

_NOT_FOUND_STATUSES = frozenset({"404", "StatusCode.NOT_FOUND"})
_INVALID_STATUSES = frozenset({"400", "StatusCode.INVALID_ARGUMENT"})
_UNAVAILABLE_STATUSES = frozenset({"502", "503", "StatusCode.UNAVAILABLE"})
# The gateway's words when a model is at its admission limit, and Triton's own when a model's
# queue policy is full (a repository served by Triton without maas's gateway).
OVERLOAD_MESSAGES = ("is at its limit of", "exceeds maximum queue size", "slots are busy")
_TIMEOUT_STATUSES = frozenset({"408", "504", "StatusCode.DEADLINE_EXCEEDED"})
_KEY_STATUSES: dict[str, type[ClientError]] = {
    "401": AuthenticationError,
    "StatusCode.UNAUTHENTICATED": AuthenticationError,
    "403": PermissionDeniedError,
    "StatusCode.PERMISSION_DENIED": PermissionDeniedError,
    "429": RateLimitedError,
    "StatusCode.RESOURCE_EXHAUSTED": RateLimitedError,
}
RETRY_AFTER = re.compile(r"retry after (\d+(?:\.\d+)?) s")


def _is_unknown_model_message(message: str) -> bool:
    """Whether a server message says the model (or version) does not exist."""
    lowered = message.lower()
    # Triton 2.51 says "Request for unknown model: 'x' is not found" (HTTP 404 / NOT_FOUND);
    # older servers sent the same text with HTTP 400.
    return "unknown model" in lowered or "is not found" in lowered


def _class_for_status(status: str | None, message: str) -> type[ClientError]:
    """Pick the error class for a server status code and message."""
    if status in _KEY_STATUSES:
        return _KEY_STATUSES[status]
    if status in _NOT_FOUND_STATUSES:
        return ModelNotFoundError
    # Only trust the wording where the status is vague; a model's own 500 may say "not found".
    if (status is None or status in _INVALID_STATUSES) and _is_unknown_model_message(message):
        return ModelNotFoundError
    if status in _INVALID_STATUSES:
        return InvalidInputError
    if status in _UNAVAILABLE_STATUSES:
        overloaded = any(words in message.lower() for words in OVERLOAD_MESSAGES)
        return ServerOverloadedError if overloaded else ServerUnavailableError
    if status in _TIMEOUT_STATUSES:
        return InferenceTimeoutError
    return InferenceFailedError


def _error(cls: type[ClientError], model: str, message: str, status: str | None) -> ClientError:
    """The error, with the server's retry hint when it is a rate limit."""
    text = _format(model, message, status)
    if cls is RateLimitedError:
        hint = RETRY_AFTER.search(message)
        return RateLimitedError(
            text, model=model, status=status, retry_after_s=float(hint.group(1)) if hint else 1
        )
    return cls(text, model=model, status=status)


def _format(model: str, message: str, status: str | None) -> str:
    """Build a message that names the model and keeps the server's words and status."""
    suffix = f" [{status}]" if status else ""
    return f"model {model!r}: {message}{suffix}"


def _grpc_status(exc: BaseException) -> str | None:
    """Return a raw grpc.RpcError's code spelled "StatusCode.X", or None if it has none."""
    code = getattr(exc, "code", None)
    if not callable(code):
        return None
    try:
        return str(code())
    except Exception:  # a bare RpcError without call state: no code to read
        return None


def _describe(exc: BaseException) -> str:
    """Exception text, falling back to the class name when the text is empty."""
    text = str(exc)
    return text if text else type(exc).__name__


def map_error(exc: BaseException, *, model: str) -> ClientError:
    """Map an exception from tritonclient or its transports onto the `ClientError` tree."""
    if isinstance(exc, ClientError):
        return exc
    if isinstance(exc, InferenceServerException):
        status = exc.status()
        message = exc.message() or _describe(exc)
        return _error(_class_for_status(status, message), model, message, status)
    grpc_status = _grpc_status(exc)
    if grpc_status is not None:
        details = getattr(exc, "details", None)
        message = str(details()) if callable(details) else _describe(exc)
        return _error(_class_for_status(grpc_status, message), model, message, grpc_status)
    # Timeouts first: TimeoutError is itself an OSError.
    if isinstance(exc, _TIMEOUT_TYPES):
        message = f"timed out waiting for the server ({type(exc).__name__}: {_describe(exc)})"
        return InferenceTimeoutError(_format(model, message, None), model=model)
    if isinstance(exc, _CONNECTION_TYPES):
        message = f"server unreachable ({type(exc).__name__}: {_describe(exc)})"
        return ServerUnavailableError(_format(model, message, None), model=model)
    message = f"{type(exc).__name__}: {_describe(exc)}"
    return InferenceFailedError(_format(model, message, None), model=model)
