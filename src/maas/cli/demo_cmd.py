"""`maas demo`: export, serve, classify and embed real inputs, benchmark; on this machine.

The demo imports maas.export (torch) and maas.clients (gevent); the command imports it inside
itself so that `maas --help` and the other commands start without them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from .common import DEFAULT_REPOSITORY, RepositoryOption, setup_logging, user_errors


def demo_command(
    repository: RepositoryOption = DEFAULT_REPOSITORY,
    http_port: Annotated[int, typer.Option(help="HTTP port of the demo server.")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="gRPC port of the demo server.")] = 8001,
    metrics_port: Annotated[int, typer.Option(help="Metrics port of the demo server.")] = 8002,
    bench_seconds: Annotated[float, typer.Option(help="Length of the closing benchmark.")] = 5.0,
    reexport: Annotated[bool, typer.Option(help="Export even if artifacts exist.")] = False,
) -> None:
    """The whole path: export, serve, classify real images over HTTP and gRPC, benchmark."""
    from .demo import run_demo

    setup_logging()
    with user_errors(), tempfile.TemporaryDirectory(prefix="maas-demo-") as scratch:
        run_demo(
            repository,
            (http_port, grpc_port, metrics_port),
            bench_seconds,
            reexport,
            Path(scratch),
            typer.echo,
        )
