"""How a client reaches the server: protocol, url, timeouts, gRPC keepalive and TLS.

`ClientOptions` holds one client's settings, checked when built; the functions below turn them
into tritonclient's objects, blocking or asyncio, HTTP or gRPC. This is the one module of the
clients that names tritonclient's protocol modules.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
import tritonclient.http.aio as httpaio

from maas.base.errors import ClientError
from maas.base.triton import endpoints
from maas.base.triton.endpoints import Protocol as Protocol  # re-exported: the clients' own name

from .retry import DEFAULT_RETRY, RetryPolicy

# Ping an idle gRPC connection every 30 s (10 s to answer) so NAT and load balancers keep it and
# a dead peer is noticed; `maas serve` allows pings this often (GRPC_KEEPALIVE_FLAGS).
GRPC_KEEPALIVE_TIME_MS = 30_000
GRPC_KEEPALIVE_TIMEOUT_MS = 10_000
API_KEY_ENV = "MAAS_API_KEY"


def check_protocol(protocol: str) -> Protocol:
    """Return the protocol if it is one this package speaks, else raise `ClientError`."""
    if protocol not in endpoints.DEFAULT_URLS:
        raise ClientError(f"unknown protocol {protocol!r}; expected 'http' or 'grpc'")
    return cast(Protocol, protocol)


def default_url(protocol: Protocol) -> str:
    """Return Triton's default local address for a protocol."""
    return endpoints.default_url(check_protocol(protocol))


def resolve_url(url: str | None, protocol: Protocol) -> str:
    """Return the url to connect to; tritonclient wants ``host:port`` without a scheme."""
    if url is None:
        return default_url(protocol)
    if "://" in url:
        raise ClientError(f"url must be host:port without a scheme, got {url!r}")
    return url


def grpc_keepalive() -> grpcclient.KeepAliveOptions:
    """Tritonclient's keepalive settings for every gRPC connection maas opens."""
    return grpcclient.KeepAliveOptions(
        keepalive_time_ms=GRPC_KEEPALIVE_TIME_MS,
        keepalive_timeout_ms=GRPC_KEEPALIVE_TIMEOUT_MS,
        keepalive_permit_without_calls=True,
        http2_max_pings_without_data=0,
    )


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
    tls_root_cert: str = ""  # PEM file of the CA: TLS for both protocols (the server's --tls-cert)
    api_key: str = ""  # sent as `authorization: Bearer KEY` (HTTP header, gRPC metadata)

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
        api_key: str | None = None,
    ) -> ClientOptions:
        """Build options as the clients take them: no url means Triton's local default.

        No api_key given: $MAAS_API_KEY, if set.
        """
        url = resolve_url(url, check_protocol(protocol))
        key = os.environ.get(API_KEY_ENV, "") if api_key is None else api_key
        return cls(url, protocol, timeout_s, version, retry or DEFAULT_RETRY, tls_root_cert, key)

    def root_cert(self) -> str:
        """The CA file for TLS, checked; empty: plaintext."""
        if self.tls_root_cert and not Path(self.tls_root_cert).is_file():
            raise ClientError(f"TLS root certificate {self.tls_root_cert} does not exist")
        return self.tls_root_cert

    def grpc_kwargs(self) -> dict[str, Any]:
        """Keepalive, and TLS when a root certificate is given, for tritonclient's gRPC clients."""
        cert = self.root_cert()
        tls = {"ssl": True, "root_certificates": cert} if cert else {}
        return {"keepalive_options": grpc_keepalive(), **tls}

    def http_kwargs(self) -> dict[str, Any]:
        """HTTPS with the given CA, for tritonclient's blocking HTTP client."""
        cert = self.root_cert()
        return {"ssl": True, "ssl_options": {"ca_certs": cert}} if cert else {}

    def http_asyncio_kwargs(self) -> dict[str, Any]:
        """HTTPS with the given CA, for tritonclient's asyncio HTTP client (aiohttp)."""
        cert = self.root_cert()
        return {"ssl": True, "ssl_context": ssl.create_default_context(cafile=cert)} if cert else {}


def auth_headers(api_key: str | None = None) -> dict[str, str]:
    """The header that carries an API key (given, else $MAAS_API_KEY); empty without one."""
    key = os.environ.get(API_KEY_ENV, "") if api_key is None else api_key
    return {"authorization": f"Bearer {key}"} if key else {}


def call_kwargs(protocol: Protocol, timeout_s: float, api_key: str = "") -> dict[str, Any]:
    """Per-call keyword arguments: gRPC's deadline, and the API key on every call.

    HTTP takes its timeouts on the client; the key travels as a header (HTTP) or as metadata
    (gRPC).
    """
    found: dict[str, Any] = {"client_timeout": timeout_s} if protocol == "grpc" else {}
    if api_key:
        found["headers"] = auth_headers(api_key)
    return found


def json_kwargs(protocol: Protocol) -> dict[str, Any]:
    """Keyword arguments that make gRPC metadata/config calls return dicts like HTTP does."""
    return {"as_json": True} if protocol == "grpc" else {}


def tensor_module(protocol: Protocol) -> Any:
    """The tritonclient module whose ``InferInput`` and ``InferRequestedOutput`` to build.

    The blocking modules' classes serve the asyncio clients too: tritonclient's aio clients
    take the same request objects.
    """
    return httpclient if protocol == "http" else grpcclient


def open_blocking(options: ClientOptions) -> Any:
    """Return tritonclient's blocking client; HTTP takes its timeouts here, gRPC per call."""
    if options.protocol == "http":
        return httpclient.InferenceServerClient(
            options.url,
            connection_timeout=options.timeout_s,
            network_timeout=options.timeout_s,
            **options.http_kwargs(),
        )
    return grpcclient.InferenceServerClient(options.url, **options.grpc_kwargs())


def open_asyncio(options: ClientOptions) -> Any:
    """Return tritonclient's asyncio client; call it inside the loop that will use it."""
    if options.protocol == "http":
        return httpaio.InferenceServerClient(
            options.url, conn_timeout=options.timeout_s, **options.http_asyncio_kwargs()
        )
    return grpcaio.InferenceServerClient(options.url, **options.grpc_kwargs())
