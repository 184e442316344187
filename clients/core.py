"""Model clients for Triton over HTTP or gRPC, sync and async, sharing one request path.

Everything that does not depend on the transport (metadata parsing, input validation, building
tensors, reading outputs) is a plain function below; the four client flavours only differ in
which tritonclient class they call and whether they await it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NoReturn, TypeVar, cast

import numpy as np
import numpy.typing as npt
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
import tritonclient.http.aio as httpaio
from tritonclient.utils import InferenceServerException, np_to_triton_dtype, triton_to_np_dtype

from .errors import (
    TRANSPORT_ERRORS,
    ClientError,
    InferenceFailedError,
    InferenceTimeoutError,
    InvalidInputError,
    ServerUnavailableError,
    map_error,
)
from .retry import DEFAULT_RETRY, RetryPolicy, retrying, retrying_async

Protocol = Literal["http", "grpc"]
Array = npt.NDArray[Any]

_DEFAULT_URLS: dict[str, str] = {"http": "localhost:8000", "grpc": "localhost:8001"}


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output as the server describes it (shape includes any batch dim)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    # From the model config; the server accepts requests that leave optional inputs out.
    optional: bool = False

    def describe(self) -> str:
        """Return e.g. ``input (FP32 [-1, 4])`` for error messages."""
        return f"{self.name} ({self.datatype} {list(self.shape)})"


@dataclass(frozen=True)
class ModelInfo:
    """What a client needs to know to call a model: its tensors and batching limit."""

    name: str
    versions: tuple[str, ...]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    max_batch_size: int

    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the model's inputs in server order."""
        return tuple(tensor.name for tensor in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the model's outputs in server order."""
        return tuple(tensor.name for tensor in self.outputs)


def default_url(protocol: Protocol) -> str:
    """Return Triton's default local address for a protocol."""
    return _DEFAULT_URLS[check_protocol(protocol)]


def check_protocol(protocol: str) -> Protocol:
    """Return the protocol if it is one this package speaks, else raise `ClientError`."""
    if protocol not in _DEFAULT_URLS:
        raise ClientError(f"unknown protocol {protocol!r}; expected 'http' or 'grpc'")
    return cast(Protocol, protocol)


def resolve_url(url: str | None, protocol: Protocol) -> str:
    """Return the url to connect to; tritonclient wants ``host:port`` without a scheme."""
    if url is None:
        return default_url(protocol)
    if "://" in url:
        raise ClientError(f"url must be host:port without a scheme, got {url!r}")
    return url


@dataclass(frozen=True)
class ClientOptions:
    """Where and how to reach a model: server url, protocol, per-call timeout, model version.

    Checked when built; a typed client builds one and shares it between its connections to a
    model and to that model's companion ensemble.
    """

    url: str
    protocol: Protocol = "http"
    timeout_s: float = 30.0
    version: str = ""
    retry: RetryPolicy = DEFAULT_RETRY
    tls_root_cert: str = ""  # PEM file of the CA: gRPC over TLS (the server's --tls-cert)

    def __post_init__(self) -> None:
        """Refuse an unknown protocol or a url with a scheme."""
        resolve_url(self.url, check_protocol(self.protocol))

    @classmethod
    def create(
        cls,
        url: str | None = None,
        protocol: Protocol = "http",
        timeout_s: float = 30.0,
        version: str = "",
        retry: RetryPolicy | None = None,
        tls_root_cert: str = "",
    ) -> ClientOptions:
        """Build options as the clients take them: no url means Triton's local default."""
        url = resolve_url(url, check_protocol(protocol))
        return cls(url, protocol, timeout_s, version, retry or DEFAULT_RETRY, tls_root_cert)

    def grpc_kwargs(self) -> dict[str, Any]:
        """Keepalive, and TLS when a root certificate is given, for tritonclient's gRPC clients."""
        if self.tls_root_cert and not Path(self.tls_root_cert).is_file():
            raise ClientError(f"TLS root certificate {self.tls_root_cert} does not exist")
        tls = {"ssl": True, "root_certificates": self.tls_root_cert} if self.tls_root_cert else {}
        return {"keepalive_options": grpc_keepalive(), **tls}


def _poll_waits() -> Iterator[float]:
    """Waits between readiness polls: 0.1 s doubling to 2 s, then 2 s for ever."""
    wait = 0.1
    while True:
        yield wait
        wait = min(2.0, wait * 2)


# --- metadata and config -------------------------------------------------------------------


def _tensor_infos(
    entries: Sequence[Mapping[str, Any]], optional: frozenset[str]
) -> tuple[TensorInfo, ...]:
    """Build TensorInfos from metadata entries; gRPC JSON spells int64 dims as strings."""
    return tuple(
        TensorInfo(
            name=str(entry["name"]),
            datatype=str(entry["datatype"]),
            shape=tuple(int(dim) for dim in entry.get("shape", ())),
            optional=str(entry["name"]) in optional,
        )
        for entry in entries
    )


def parse_model_info(metadata: Mapping[str, Any], config: Mapping[str, Any]) -> ModelInfo:
    """Combine model metadata and config, in HTTP or gRPC-JSON form, into a `ModelInfo`.

    gRPC wraps the config in ``{"config": {...}}`` and leaves out zero-valued fields (so a
    non-batching model has no ``max_batch_size``); HTTP returns the config itself.
    """
    inner = config.get("config")
    model_config: Mapping[str, Any] = inner if isinstance(inner, Mapping) else config
    optional = frozenset(
        str(entry["name"]) for entry in model_config.get("input", ()) if entry.get("optional")
    )
    return ModelInfo(
        name=str(metadata["name"]),
        versions=tuple(str(version) for version in metadata.get("versions", ())),
        inputs=_tensor_infos(metadata.get("inputs", ()), optional),
        outputs=_tensor_infos(metadata.get("outputs", ()), frozenset()),
        max_batch_size=int(model_config.get("max_batch_size", 0)),
    )


# --- requests ------------------------------------------------------------------------------


def triton_datatype(dtype: np.dtype[Any]) -> str | None:
    """Return the Triton datatype for a numpy dtype (object and bytes_ are BYTES), or None."""
    datatype = np_to_triton_dtype(dtype)
    return None if datatype is None else str(datatype)


def _numpy_hint(datatype: str) -> str:
    """Describe the numpy array that carries a Triton datatype, for error messages."""
    if datatype == "BYTES":
        return "a numpy array of dtype object holding bytes"
    np_type = triton_to_np_dtype(datatype)
    return datatype if np_type is None else f"numpy {np.dtype(np_type)}"


def _expected_inputs(info: ModelInfo) -> str:
    """List a model's inputs for error messages."""
    return ", ".join(tensor.describe() for tensor in info.inputs) or "no inputs"


def validate_inputs(info: ModelInfo, inputs: Mapping[str, Array]) -> None:
    """Check input names and datatypes against the model; the server still checks shapes."""
    expected = {tensor.name: tensor for tensor in info.inputs}
    unknown = sorted(set(inputs) - set(expected))
    if unknown:
        raise InvalidInputError(
            f"model {info.name!r} has no input(s) {', '.join(map(repr, unknown))}; "
            f"expected inputs: {_expected_inputs(info)}",
            model=info.name,
        )
    missing = [t.name for t in info.inputs if not t.optional and t.name not in inputs]
    if missing:
        raise InvalidInputError(
            f"model {info.name!r} is missing input(s) {', '.join(map(repr, missing))}; "
            f"expected inputs: {_expected_inputs(info)}",
            model=info.name,
        )
    for name, array in inputs.items():
        want = expected[name].datatype
        if not isinstance(array, np.ndarray):
            raise InvalidInputError(
                f"model {info.name!r} input {name!r} is a {type(array).__name__}; "
                f"expected {_numpy_hint(want)} ({want})",
                model=info.name,
            )
        got = triton_datatype(array.dtype)
        if got != want:
            raise InvalidInputError(
                f"model {info.name!r} input {name!r} has numpy dtype {array.dtype} "
                f"({got or 'no Triton datatype'}); expected {_numpy_hint(want)} ({want})",
                model=info.name,
            )


def build_infer_inputs(model: str, inputs: Mapping[str, Array], infer_input: Any) -> list[Any]:
    """Wrap validated arrays in the protocol's ``InferInput`` class."""
    built: list[Any] = []
    for name, array in inputs.items():
        tensor = infer_input(name, list(array.shape), triton_datatype(array.dtype))
        try:
            tensor.set_data_from_numpy(array)
        except InferenceServerException as exc:  # raised locally, e.g. shape/dtype mismatch
            raise InvalidInputError(
                f"model {model!r} input {name!r}: {exc.message()}", model=model
            ) from exc
        built.append(tensor)
    return built


def select_outputs(
    info: ModelInfo, outputs: Sequence[str] | None, class_count: int
) -> tuple[str, ...]:
    """Return the output names to request: all when None, else the checked given names."""
    if class_count < 0:
        raise InvalidInputError(f"class_count must be >= 0, got {class_count}", model=info.name)
    if outputs is None:
        return info.output_names
    # A lone string is a Sequence[str] too; treat it as one name rather than its characters.
    names = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    unknown = [name for name in names if name not in info.output_names]
    if unknown:
        raise InvalidInputError(
            f"model {info.name!r} has no output(s) {', '.join(map(repr, unknown))}; "
            f"expected outputs: {', '.join(t.describe() for t in info.outputs)}",
            model=info.name,
        )
    return names


def build_requested_outputs(
    names: Sequence[str], class_count: int, requested_output: Any
) -> list[Any]:
    """Wrap output names in the protocol's ``InferRequestedOutput`` class."""
    return [requested_output(name, class_count=class_count) for name in names]


@dataclass(frozen=True)
class PreparedRequest:
    """Protocol objects for one inference call plus the output names to read back."""

    inputs: list[Any]
    outputs: list[Any]
    output_names: tuple[str, ...]


def prepare_request(
    info: ModelInfo,
    inputs: Mapping[str, Array],
    outputs: Sequence[str] | None,
    class_count: int,
    protocol: Protocol,
) -> PreparedRequest:
    """Validate a request against `info` and build the tritonclient objects for `protocol`."""
    validate_inputs(info, inputs)
    names = select_outputs(info, outputs, class_count)
    module: Any = httpclient if protocol == "http" else grpcclient
    return PreparedRequest(
        inputs=build_infer_inputs(info.name, inputs, module.InferInput),
        outputs=build_requested_outputs(names, class_count, module.InferRequestedOutput),
        output_names=names,
    )


def extract_outputs(result: Any, names: Sequence[str], model: str) -> dict[str, Array]:
    """Read the named outputs from an ``InferResult`` as numpy arrays."""
    arrays: dict[str, Array] = {}
    for name in names:
        array = result.as_numpy(name)
        if array is None:
            raise InferenceFailedError(
                f"model {model!r}: response has no output {name!r}", model=model
            )
        arrays[name] = array
    return arrays


# --- transport -----------------------------------------------------------------------------


def call_kwargs(protocol: Protocol, timeout_s: float) -> dict[str, Any]:
    """Per-call keyword arguments: gRPC takes its deadline on each call, HTTP on the client."""
    return {"client_timeout": timeout_s} if protocol == "grpc" else {}


def json_kwargs(protocol: Protocol) -> dict[str, Any]:
    """Keyword arguments that make gRPC metadata/config calls return dicts like HTTP does."""
    return {"as_json": True} if protocol == "grpc" else {}


def not_ready(exc: BaseException, model: str) -> Literal[False]:
    """Readiness probes answer False when the server cannot be reached; other errors raise."""
    error = map_error(exc, model=model)
    if isinstance(error, (ServerUnavailableError, InferenceTimeoutError)):
        return False
    raise error from exc


def _raise_mapped(exc: BaseException, model: str) -> NoReturn:
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


# Ping an idle gRPC connection every 30 s (10 s to answer) so NAT and load balancers keep it and
# a dead peer is noticed; `maas serve` allows pings this often (GRPC_KEEPALIVE_FLAGS).
GRPC_KEEPALIVE_TIME_MS = 30_000
GRPC_KEEPALIVE_TIMEOUT_MS = 10_000


def grpc_keepalive() -> grpcclient.KeepAliveOptions:
    """Tritonclient's keepalive settings for every gRPC connection maas opens."""
    return grpcclient.KeepAliveOptions(
        keepalive_time_ms=GRPC_KEEPALIVE_TIME_MS,
        keepalive_timeout_ms=GRPC_KEEPALIVE_TIMEOUT_MS,
        keepalive_permit_without_calls=True,
        http2_max_pings_without_data=0,
    )


_Client = TypeVar("_Client", bound="_ModelClientBase")


class _ModelClientBase:
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
    ) -> None:
        self.model = model
        self.options = ClientOptions.create(url, protocol, timeout_s, version, retry, tls_root_cert)
        self.retry = self.options.retry
        self.protocol = self.options.protocol
        self.url = self.options.url
        self.timeout_s = timeout_s
        self.version = version
        self._call_kwargs = call_kwargs(self.protocol, timeout_s)
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
        )

    def _open_transport(self) -> Any:
        """Return the tritonclient client, or None to open it on first use."""
        raise NotImplementedError


class ModelClient(_ModelClientBase, Closable):
    """Blocking client for one model on a Triton server.

    Like the tritonclient objects underneath it, one instance serves one thread at a time; the
    HTTP transport is gevent-based and fails when shared across threads.
    """

    def _open_transport(self) -> Any:
        """Create the transport now, so a client that cannot be made fails on construction."""
        try:
            if self.protocol == "http":
                return httpclient.InferenceServerClient(
                    self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
                )
            return grpcclient.InferenceServerClient(self.url, **self.options.grpc_kwargs())
        except TRANSPORT_ERRORS as exc:
            _raise_mapped(exc, self.model)

    @property
    def info(self) -> ModelInfo:
        """Model metadata and config, read from the server on first use."""
        if self._info is None:
            kwargs = self._info_kwargs

            def fetch() -> ModelInfo:
                try:
                    metadata = self._client.get_model_metadata(self.model, self.version, **kwargs)
                    config = self._client.get_model_config(self.model, self.version, **kwargs)
                except TRANSPORT_ERRORS as exc:
                    _raise_mapped(exc, self.model)
                return parse_model_info(metadata, config)

            self._info = retrying(fetch, self.retry)
        return self._info

    def infer(
        self,
        inputs: Mapping[str, Array],
        outputs: Sequence[str] | None = None,
        class_count: int = 0,
    ) -> dict[str, Array]:
        """Run one inference; return the requested outputs (all when None) by name.

        With ``class_count > 0`` Triton's classification extension replaces each output with
        a BYTES array of ``"score:index[:label]"`` entries for the top classes.
        """
        request = prepare_request(self.info, inputs, outputs, class_count, self.protocol)

        def attempt() -> Any:
            try:
                return self._client.infer(
                    self.model,
                    request.inputs,
                    model_version=self.version,
                    outputs=request.outputs,
                    **self._call_kwargs,
                )
            except TRANSPORT_ERRORS as exc:
                _raise_mapped(exc, self.model)

        result = retrying(attempt, self.retry)  # only what the server did not run is retried
        return extract_outputs(result, request.output_names, self.model)

    def wait_until_ready(self, timeout_s: float = 60.0) -> None:
        """Block until the model is ready; ServerUnavailableError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        for wait in _poll_waits():
            if self.is_ready():
                return
            if time.monotonic() + wait > deadline:
                raise ServerUnavailableError(
                    f"model {self.model!r} at {self.url} was not ready within {timeout_s:g} s",
                    model=self.model,
                )
            time.sleep(wait)

    def is_ready(self) -> bool:
        """Whether the server has the model loaded and ready; False if it cannot be reached."""
        try:
            return bool(self._client.is_model_ready(self.model, self.version, **self._call_kwargs))
        except TRANSPORT_ERRORS as exc:
            return not_ready(exc, self.model)

    def server_ready(self) -> bool:
        """Whether the server is ready for inference; False if it cannot be reached."""
        try:
            return bool(self._client.is_server_ready(**self._call_kwargs))
        except TRANSPORT_ERRORS as exc:
            return not_ready(exc, self.model)

    def close(self) -> None:
        """Close the connection; the client cannot be used afterwards."""
        self._client.close()


class AsyncModelClient(_ModelClientBase, AsyncClosable):
    """Asyncio client for one model on a Triton server; the same API as `ModelClient`.

    The connection opens on the first call, inside the running event loop, because aiohttp
    sessions and grpc.aio channels bind to the loop they are created in.
    """

    def _open_transport(self) -> Any:
        """Open nothing yet; `_connected` opens the transport inside the event loop."""
        return None

    def _connected(self) -> Any:
        """Return the tritonclient aio client, creating it on first use."""
        if self._client is None:
            try:
                self._client = (
                    httpaio.InferenceServerClient(self.url, conn_timeout=self.timeout_s)
                    if self.protocol == "http"
                    else grpcaio.InferenceServerClient(self.url, **self.options.grpc_kwargs())
                )
            except TRANSPORT_ERRORS as exc:
                _raise_mapped(exc, self.model)
        return self._client

    async def info(self) -> ModelInfo:
        """Model metadata and config, read from the server on first use."""
        if self._info is None:
            client, kwargs = self._connected(), self._info_kwargs

            async def fetch() -> ModelInfo:
                try:
                    metadata = await client.get_model_metadata(self.model, self.version, **kwargs)
                    config = await client.get_model_config(self.model, self.version, **kwargs)
                except TRANSPORT_ERRORS as exc:
                    _raise_mapped(exc, self.model)
                return parse_model_info(metadata, config)

            self._info = await retrying_async(fetch, self.retry)
        return self._info

    async def infer(
        self,
        inputs: Mapping[str, Array],
        outputs: Sequence[str] | None = None,
        class_count: int = 0,
    ) -> dict[str, Array]:
        """Run one inference; see `ModelClient.infer`."""
        info = await self.info()
        request = prepare_request(info, inputs, outputs, class_count, self.protocol)

        async def attempt() -> Any:
            try:
                return await self._connected().infer(
                    self.model,
                    request.inputs,
                    model_version=self.version,
                    outputs=request.outputs,
                    **self._call_kwargs,
                )
            except TRANSPORT_ERRORS as exc:
                _raise_mapped(exc, self.model)

        result = await retrying_async(attempt, self.retry)
        return extract_outputs(result, request.output_names, self.model)

    async def is_ready(self) -> bool:
        """Whether the server has the model loaded and ready; False if it cannot be reached."""
        try:
            ready = await self._connected().is_model_ready(
                self.model, self.version, **self._call_kwargs
            )
        except TRANSPORT_ERRORS as exc:
            return not_ready(exc, self.model)
        return bool(ready)

    async def server_ready(self) -> bool:
        """Whether the server is ready for inference; False if it cannot be reached."""
        try:
            ready = await self._connected().is_server_ready(**self._call_kwargs)
        except TRANSPORT_ERRORS as exc:
            return not_ready(exc, self.model)
        return bool(ready)

    async def close(self) -> None:
        """Close the connection if one was opened."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
