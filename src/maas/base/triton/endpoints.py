"""Triton's default ports and URLs, shared by the server, the clients and the benchmarks."""

from __future__ import annotations

import random
import socket
from typing import Literal

Protocol = Literal["http", "grpc"]
PROTOCOLS: tuple[Protocol, ...] = ("http", "grpc")

HTTP_PORT = 8000
GRPC_PORT = 8001
METRICS_PORT = 8002
GATEWAY_METRICS_PORT = 8003  # the gateway's own Prometheus exporter
STACK_METRICS_PORT = 8004  # the watchdog's: restarts, memory, shared memory
DEFAULT_HOST = "localhost"
DEFAULT_URLS: dict[str, str] = {
    "http": f"{DEFAULT_HOST}:{HTTP_PORT}",
    "grpc": f"{DEFAULT_HOST}:{GRPC_PORT}",
}


def default_url(protocol: str) -> str:
    """host:port where a local server answers `protocol` by default."""
    if protocol not in DEFAULT_URLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return DEFAULT_URLS[protocol]


def port_is_free(host: str, port: int) -> bool:
    """Whether a TCP port can be bound on host right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


FREE_PORTS = range(20000, 32768)  # below Linux's ephemeral range (32768-60999 by default)
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, for a server about to start (tests, Triton behind the gateway).

    Chosen below the kernel's ephemeral range: a port from there (what binding port 0 gives)
    can become the local end of any outgoing connection before its server listens on it.
    """
    candidates = [port for port in FREE_PORTS if port not in _handed_out]
    for port in random.sample(candidates, min(200, len(candidates))):
        if port_is_free(host, port):
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
