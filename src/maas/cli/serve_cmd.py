"""`maas serve` (Triton behind its HTTP front, kept up) and `maas front` (the front alone)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from maas.base.errors import ServerError
from maas.serve import StackOptions, serve
from maas.serve.embedded import ServerOptions
from maas.serve.front import FrontOptions, HttpFront

from .common import (
    DEFAULT_REPOSITORY,
    HostOption,
    MiB,
    RepositoryOption,
    stop_requested,
    user_errors,
)

HttpPortOption = Annotated[int, typer.Option(help="HTTP/REST port.")]
GrpcPortOption = Annotated[int, typer.Option(help="gRPC port.")]
MetricsPortOption = Annotated[int, typer.Option(help="Prometheus metrics port.")]
LogVerboseOption = Annotated[int, typer.Option(help="Triton's verbose log level (0 = off).")]
WorkdirOption = Annotated[
    Path | None, typer.Option(help="Where the serving repository and log go.")
]
ExitTimeoutOption = Annotated[
    int, typer.Option(help="Seconds shutdown waits for in-flight requests.")
]
PaddingOption = Annotated[
    str,
    typer.Option(help="Variable-length batching: buckets (rows grouped by length) or longest."),
]
ControlKeyOption = Annotated[
    str,
    typer.Option(
        envvar="MAAS_CONTROL_KEY",
        help="Turn model control on (load/unload over the API) for requests carrying this "
        "key in the maas-control-key header; off when not given.",
    ),
]
UnprotectedOption = Annotated[
    bool,
    typer.Option(
        help="Where nginx is missing, serve Triton's own HTTP port publicly anyway "
        "(one malformed request can crash it); otherwise HTTP stays on loopback."
    ),
]
ServeBodyOption = Annotated[
    float, typer.Option(min=1, help="Largest HTTP request body the front lets through.")
]
TlsCertOption = Annotated[
    Path | None, typer.Option(help="PEM certificate: gRPC serves TLS only (with --tls-key).")
]
TlsKeyOption = Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")]
UpstreamOption = Annotated[
    str, typer.Option(help="host:port of the Triton HTTP endpoint to guard.")
]
FrontPortOption = Annotated[int, typer.Option(help="Public HTTP port.")]
FrontBodyOption = Annotated[
    float, typer.Option(min=1, help="Largest HTTP request body let through.")
]
FrontWorkdirOption = Annotated[Path | None, typer.Option(help="Where nginx.conf and logs go.")]


def serve_command(
    repository: RepositoryOption = DEFAULT_REPOSITORY,
    host: HostOption = "127.0.0.1",
    http_port: HttpPortOption = 8000,
    grpc_port: GrpcPortOption = 8001,
    metrics_port: MetricsPortOption = 8002,
    log_verbose: LogVerboseOption = 0,
    workdir: WorkdirOption = None,
    exit_timeout: ExitTimeoutOption = 30,
    padding: PaddingOption = "buckets",
    control_key: ControlKeyOption = "",
    allow_unprotected_http: UnprotectedOption = False,
    max_body_mb: ServeBodyOption = 32,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
) -> None:
    """Run the real tritonserver behind its HTTP front until Ctrl-C or SIGTERM.

    If tritonserver dies it is restarted with backoff; readiness is false meanwhile.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with user_errors():
        server = ServerOptions(
            repository=repository,
            http_port=http_port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            host=host,
            log_verbose=log_verbose,
            workdir=workdir,
            exit_timeout_s=exit_timeout,
            padding_strategy=padding,
            control_key=control_key,
            tls_cert=tls_cert,
            tls_key=tls_key,
        )
        run_stack(
            StackOptions(
                server,
                allow_unprotected_http=allow_unprotected_http,
                max_body_bytes=int(max_body_mb * MiB),
            )
        )


def run_stack(options: StackOptions) -> None:
    """Start the stack, say where it answers, and keep it up until Ctrl-C or SIGTERM."""
    # Handlers first: a stop asked for while the server starts is honoured once it is up.
    stopping = stop_requested()
    with serve(options) as server:
        for model in server.served:
            typer.echo(f"model {model.name:24} {model.backend:12} served {model.served_by}")
        typer.echo(
            f"HTTP    {server.http_url}\ngRPC    {server.grpc_url}\nmetrics {server.metrics_url}"
        )
        typer.echo(f"HTTP is guarded by: {server.http_protection}")
        typer.echo(f"log     {server.log_path}\nready; Ctrl-C or SIGTERM stops it", err=False)
        while not stopping.wait(0.5):
            pass  # the watchdog keeps the server up; a signal ends this
        typer.echo("stopping: waiting for in-flight requests …", err=True)


def front_command(
    upstream: UpstreamOption,
    host: HostOption = "127.0.0.1",
    port: FrontPortOption = 8080,
    max_body_mb: FrontBodyOption = 32,
    workdir: FrontWorkdirOption = None,
) -> None:
    """Run only the hardened HTTP front, before any Triton (e.g. NVIDIA's container)."""
    with user_errors():
        upstream_host, _, upstream_port = upstream.rpartition(":")
        if not upstream_host or not upstream_port.isdigit():
            raise typer.BadParameter(f"--upstream must be host:port, got {upstream!r}")
        options = FrontOptions(
            host=host,
            port=port,
            upstream_port=int(upstream_port),
            upstream_host=upstream_host,
            max_body_bytes=int(max_body_mb * MiB),
        )
        with tempfile.TemporaryDirectory(prefix="maas-front-") as scratch:
            front = HttpFront(options, workdir or Path(scratch))
            stopping = stop_requested()
            front.start()
            typer.echo(f"front   {host}:{port} → {upstream}\nconfig  {front.config_path}")
            while not stopping.wait(0.5):
                if front.returncode is not None:
                    raise ServerError(f"nginx exited:\n{front.log_tail()}")
            front.stop()
