"""What the blocking and asyncio model clients share: settings, cached info and error paths.

`ModelClient` (sync.py) and `AsyncModelClient` (aio.py) subclass `ModelClientBase`; they differ
only in which tritonclient client they open and whether they await it.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any, Literal, NoReturn, TypeVar

from maas.base.errors import InferenceTimeoutError, ServerUnavailableError

from .errors import map_error
from .info import ModelInfo
from .retry import RetryPolicy
from .transport import ClientOptions, Protocol, call_kwargs, json_kwargs


def poll_waits() -> Iterator[float]:
    """Waits between readiness polls: 0.1 s doubling to 2 s, then 2 s for ever."""
    wait = 0.1
    while True:
        yield wait
        wait = min(2.0, wait * 2)


def not_ready(exc: BaseException, model: str) -> Literal[False]:
    """Readiness probes answer False when the server cannot be reached; other errors raise."""
    error = map_error(exc, model=model)
    if isinstance(error, (ServerUnavailableError, InferenceTimeoutError)):
        return False
    raise error from exc


def raise_mapped(exc: BaseException, model: str) -> NoReturn:
    """Raise the `ClientError` for a transport exception, chained to it."""
    raise map_error(exc, model=model) from exc


_Closable = TypeVar("_Closable", bound="Closable")
_AsyncClosable = TypeVar("_AsyncClosable", bound="AsyncClosable")


class Closable:
    """``with`` support for a blocking client: leaving the block calls `close`."""

    def close(self) -> None:
        """Release the client's connections; each client says how."""
        raise NotImplementedError

    def __enter__(self: _Closable) -> _Closable:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClosable:
    """``async with`` support for an asyncio client: leaving the block awaits `close`."""

    async def close(self) -> None:
        """Release the client's connections; each client says how."""
        raise NotImplementedError

    async def __aenter__(self: _AsyncClosable) -> _AsyncClosable:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


_Client = TypeVar("_Client", bound="ModelClientBase")


class ModelClientBase:
    """What `ModelClient` and `AsyncModelClient` share: the model, its options, cached info.

    Subclasses only say how the transport opens (`_open_transport`) and how calls are made.
    """

    def __init__(
        self,
        model: str,
        url: str | None = None,
        protocol: Protocol = "http",
        timeout_s: float = 30.0,
        version: str = "",
        retry: RetryPolicy | None = None,
        tls_root_cert: str = "",
        api_key: str | None = None,
    ) -> None:
        self.model = model
        self.options = ClientOptions.create(
            url, protocol, timeout_s, version, retry, tls_root_cert, api_key
        )
        self.retry = self.options.retry
        self.protocol = self.options.protocol
        self.url = self.options.url
        self.timeout_s = timeout_s
        self.version = version
        self._call_kwargs = call_kwargs(self.protocol, timeout_s, self.options.api_key)
        # Metadata and config calls: gRPC also needs as_json to answer dicts like HTTP.
        self._info_kwargs = {**self._call_kwargs, **json_kwargs(self.protocol)}
        self._info: ModelInfo | None = None
        self._client: Any = self._open_transport()

    @classmethod
    def from_options(cls: type[_Client], model: str, options: ClientOptions) -> _Client:
        """Return a client for `model` with options already built, e.g. shared by two clients."""
        return cls(
            model,
            options.url,
            options.protocol,
            options.timeout_s,
            options.version,
            options.retry,
            options.tls_root_cert,
            options.api_key,
        )

    def _open_transport(self) -> Any:
        """Return the tritonclient client, or None to open it on first use."""
        raise NotImplementedError

    def _not_ready_within(self, timeout_s: float) -> ServerUnavailableError:
        """The error `wait_until_ready` raises when the model stays unready."""
        return ServerUnavailableError(
            f"model {self.model!r} at {self.url} was not ready within {timeout_s:g} s",
            model=self.model,
        )
