"""Serving: the one public way to start what users get (`serve`), and the parts behind it.

`serve(options)` starts the embedded Triton with its adapters, the gateway and the
watchdog, and yields the running stack; `maas serve`, the demo, the benchmarks, the soak
and the tests' fixtures (through `maas serve`) all start servers this way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from maas.base.triton.endpoints import free_port

from .embedded import ServerOptions
from .stack import Endpoints, ServingStack, StackOptions


@contextmanager
def serve(options: StackOptions) -> Iterator[ServingStack]:
    """Start the stack, yield it once every model is ready, stop it on the way out."""
    with ServingStack(options) as stack:
        yield stack


def local_options(repository: Path, gateway: bool = True, **server: object) -> StackOptions:
    """Options for a stack on free loopback ports, as benchmarks and tests start one."""
    return StackOptions(
        ServerOptions.on_free_ports(repository, **server),
        gateway=gateway,
        gateway_metrics_port=free_port(),
        stack_metrics_port=free_port(),
    )


__all__ = ["Endpoints", "ServerOptions", "ServingStack", "StackOptions", "local_options", "serve"]
