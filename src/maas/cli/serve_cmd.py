"""`maas serve` (Triton behind its gateway, kept up) and `maas front` (a front alone)."""

from __future__ import annotations

import ipaddress
import logging
import signal
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from maas.base.errors import MaasError, ServerError
from maas.serve import ServingStack, StackOptions, serve
from maas.serve.audit import default_audit_log
from maas.serve.embedded import ServerOptions
from maas.serve.gateway import Gateway, combined_pem
from maas.serve.gateway_config import DEFAULT_MAX_WAIT_MS, GatewayOptions, ModelLimit, Upstream
from maas.serve.keys import default_key_file
from maas.serve.stack import MAX_REPLICAS
from maas.serve.tls import default_tls_dir, self_signed_certificate

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
GatewayMetricsOption = Annotated[int, typer.Option(help="The gateway's Prometheus metrics port.")]
StackMetricsOption = Annotated[
    int, typer.Option(help="Port of the stack's own metrics (restarts, memory, shared memory).")
]
ReplicasOption = Annotated[
    int,
    typer.Option(
        min=1,
        max=MAX_REPLICAS,
        help="tritonservers behind the gateway, each with the whole repository; SIGHUP rolls "
        "the repository's current contents out to them one at a time.",
    ),
]
MaxWaitOption = Annotated[
    int, typer.Option(min=1, help="Longest a request waits for its model before a 503, ms.")
]
KeysOption = Annotated[
    Path | None,
    typer.Option(
        "--keys",
        help="Key file of tenants and API keys [default: $MAAS_KEYS, else "
        "~/.config/maas/keys.json]; followed while serving.",
    ),
]
AuthOption = Annotated[
    bool | None,
    typer.Option(
        "--auth/--no-auth",
        help="Require API keys [default: on when --host is not a loopback address].",
    ),
]
AuditLogOption = Annotated[
    Path | None,
    typer.Option(
        help="One JSON line per request (no payloads, no keys), rotated at 64 MiB [default: "
        "~/.local/state/maas/audit.jsonl when keys are required, else none].",
    ),
]
TlsOption = Annotated[
    bool | None,
    typer.Option(
        "--tls/--no-tls",
        help="Serve TLS only [default: on when --host is not a loopback address, with a "
        "self-signed certificate made once in ~/.config/maas/tls unless --tls-cert is given].",
    ),
]
LimitOption = Annotated[
    list[str] | None,
    typer.Option(
        "--limit",
        help="Per-model admission, MODEL=IN_FLIGHT[:QUEUE[:WAIT_MS]] (repeatable); default "
        "from the model's config: instances × max_batch_size in flight, as many waiting.",
    ),
]
ServeBodyOption = Annotated[
    float, typer.Option(min=1, help="Largest HTTP request body the gateway lets through.")
]
TlsCertOption = Annotated[
    Path | None,
    typer.Option(help="PEM certificate: HTTP and gRPC serve TLS only (with --tls-key)."),
]
TlsKeyOption = Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")]
UpstreamOption = Annotated[
    str, typer.Option(help="host:port of the Triton HTTP endpoint to guard.")
]
UpstreamGrpcOption = Annotated[
    str, typer.Option(help="host:port of the same Triton's gRPC endpoint.")
]
FrontPortOption = Annotated[int, typer.Option(help="Public HTTP port.")]
FrontGrpcPortOption = Annotated[int, typer.Option(help="Public gRPC port.")]
FrontBodyOption = Annotated[
    float, typer.Option(min=1, help="Largest HTTP request body let through.")
]
FrontWorkdirOption = Annotated[Path | None, typer.Option(help="Where haproxy.cfg and logs go.")]


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
    gateway_metrics_port: GatewayMetricsOption = 8003,
    stack_metrics_port: StackMetricsOption = 8004,
    max_wait_ms: MaxWaitOption = DEFAULT_MAX_WAIT_MS,
    limit: LimitOption = None,
    max_body_mb: ServeBodyOption = 32,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    keys: KeysOption = None,
    auth: AuthOption = None,
    audit_log: AuditLogOption = None,
    tls: TlsOption = None,
    replicas: ReplicasOption = 1,
) -> None:
    """Run the real tritonserver behind the gateway until Ctrl-C or SIGTERM.

    If tritonserver or the gateway dies it is restarted with backoff; readiness is false meanwhile.
    SIGHUP restarts the replicas one at a time onto the repository as it is now (a rolling update).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with user_errors():
        tls_cert, tls_key = chosen_certificate(host, tls_cert, tls_key, tls)
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
        key_file = chosen_key_file(host, keys, auth)
        run_stack(
            StackOptions(
                server,
                gateway_metrics_port=gateway_metrics_port,
                stack_metrics_port=stack_metrics_port,
                max_body_bytes=int(max_body_mb * MiB),
                max_wait_ms=max_wait_ms,
                limits=parse_limits(limit or [], max_wait_ms),
                key_file=key_file,
                audit_log=audit_log or (default_audit_log() if key_file else None),
                replicas=replicas,
            )
        )


def chosen_certificate(
    host: str, cert: Path | None, key: Path | None, tls: bool | None
) -> tuple[Path | None, Path | None]:
    """The certificate to serve: the one given, else on a public address a self-signed one."""
    if cert is not None or key is not None:
        if tls is False:
            raise typer.BadParameter("--no-tls contradicts --tls-cert/--tls-key")
        return cert, key
    if not on_off_loopback(tls, host):
        if not is_loopback(host):
            loud(f"WARNING: {host} is served without TLS (--no-tls): keys and data travel in clear")
        return None, None
    cert, key, made = self_signed_certificate(default_tls_dir(), host)
    loud(
        f"TLS with a self-signed certificate ({'made now' if made else 'made earlier'}): clients "
        f"must trust {cert} (tls_root_cert=...); pass --tls-cert/--tls-key for a real one"
    )
    return cert, key


def loud(message: str) -> None:
    """A message the operator must not miss, on stderr."""
    typer.secho(message, err=True, fg=typer.colors.YELLOW, bold=True)


def chosen_key_file(host: str, keys: Path | None, auth: bool | None) -> Path | None:
    """The key file when keys are required (by default on any non-loopback address)."""
    if not on_off_loopback(auth, host):
        return None
    path = keys or default_key_file()
    if not path.exists():
        loud(
            f"WARNING: API keys are required but {path} does not exist: every request but "
            "health checks gets 401 until `maas keys create --tenant NAME` writes it"
        )
    return path


def on_off_loopback(flag: bool | None, host: str) -> bool:
    """A --x/--no-x flag as given, else on exactly when host is not a loopback address."""
    return flag if flag is not None else not is_loopback(host)


def is_loopback(host: str) -> bool:
    """Whether an address to bind is reachable from this machine only."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def parse_limits(specs: list[str], max_wait_ms: int) -> dict[str, ModelLimit]:
    """MODEL=IN_FLIGHT[:QUEUE[:WAIT_MS]] → limits; the queue defaults to IN_FLIGHT."""
    limits = {}
    for spec in specs:
        model, _, numbers = spec.partition("=")
        parts = numbers.split(":")
        if not model or not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
            raise typer.BadParameter(
                f"--limit must be MODEL=IN_FLIGHT[:QUEUE[:WAIT_MS]], got {spec!r}"
            )
        values = [int(p) for p in parts]
        in_flight = values[0]
        queue = values[1] if len(values) > 1 else in_flight
        wait = values[2] if len(values) > 2 else max_wait_ms
        limits[model] = ModelLimit(in_flight, queue, wait)
    return limits


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
        if server.gateway_metrics_url:
            typer.echo(f"gateway metrics {server.gateway_metrics_url}")
        for replica in server.replicas[1:]:
            typer.echo(f"metrics of replica {replica.index + 1} {replica.server.metrics_url}")
        typer.echo(f"stack metrics {server.stack_metrics_url}")
        typer.echo(f"HTTP is guarded by: {server.http_protection}")
        key_file = options.key_file
        typer.echo(f"API keys: required, from {key_file}" if key_file else "API keys: off")
        if options.audit_log:
            typer.echo(f"audit log {options.audit_log}")
        typer.echo(f"log     {server.log_path}\nready; Ctrl-C or SIGTERM stops it", err=False)
        rollout = rollout_requested()
        while not stopping.wait(0.5):
            if rollout.is_set():  # the watchdogs keep the servers up; SIGTERM ends this
                rollout.clear()
                start_rollout(server)
        typer.echo("stopping: waiting for in-flight requests …", err=True)


def front_command(
    upstream: UpstreamOption,
    upstream_grpc: UpstreamGrpcOption,
    host: HostOption = "127.0.0.1",
    port: FrontPortOption = 8080,
    grpc_port: FrontGrpcPortOption = 8081,
    metrics_port: GatewayMetricsOption = 8083,
    max_body_mb: FrontBodyOption = 32,
    limit: LimitOption = None,
    max_wait_ms: MaxWaitOption = DEFAULT_MAX_WAIT_MS,
    workdir: FrontWorkdirOption = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
) -> None:
    """Run only the gateway, before any Triton (e.g. NVIDIA's container)."""
    with user_errors():
        if (tls_cert is None) != (tls_key is None):
            raise ServerError("TLS needs both a certificate and its key")  # as maas serve says
        http_host, http_port = split_address(upstream, "--upstream")
        grpc_host, grpc_port_upstream = split_address(upstream_grpc, "--upstream-grpc")
        if http_host != grpc_host:
            raise typer.BadParameter("--upstream and --upstream-grpc must name the same host")
        options = GatewayOptions(
            host=host,
            http_port=port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            upstreams=(Upstream(http_host, http_port, grpc_port_upstream),),
            limits=parse_limits(limit or [], max_wait_ms),
            max_body_bytes=int(max_body_mb * MiB),
        )
        with tempfile.TemporaryDirectory(prefix="maas-front-") as scratch:
            folder = workdir or Path(scratch)
            if tls_cert is not None and tls_key is not None:
                options = replace(options, tls_pem=combined_pem(tls_cert, tls_key, folder))
            gateway = Gateway(options, folder)
            stopping = stop_requested()
            with gateway:
                typer.echo(
                    f"HTTP    {host}:{port} → {upstream}\ngRPC    {host}:{grpc_port} → "
                    f"{upstream_grpc}\nconfig  {gateway.config_path}"
                )
                while not stopping.wait(0.5):
                    if gateway.returncode is not None:
                        raise ServerError(f"the gateway exited:\n{gateway.log_tail()}")


def rollout_requested() -> threading.Event:
    """An event that SIGHUP sets: roll the repository out to the replicas."""
    requested = threading.Event()
    signal.signal(signal.SIGHUP, lambda signum, frame: requested.set())
    return requested


def start_rollout(stack: ServingStack) -> None:
    """Run a rolling update in the background; its progress and failure go to the log."""

    def roll() -> None:
        try:
            stack.rollout()
        except MaasError as failure:
            logging.getLogger("maas.serve").error("%s", failure)
            return
        logging.getLogger("maas.serve").warning("rollout: done")

    threading.Thread(target=roll, name="maas-rollout", daemon=True).start()


def split_address(address: str, option: str) -> tuple[str, int]:
    """host:port → (host, port), or a usage error naming the option."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter(f"{option} must be host:port, got {address!r}")
    return host, int(port)
