"""What `maas serve` runs: Triton, the gateway before it, and a watchdog that restarts them.

Public endpoints: the gateway (HAProxy) on host:http_port (HTTP) and host:grpc_port (gRPC), its
metrics on host:gateway_metrics_port, Triton's metrics on host:metrics_port, the stack's own
(restarts, memory) on host:stack_metrics_port. Triton's own HTTP
and gRPC ports are bound to loopback on free ports behind the gateway. With `replicas` > 1,
several tritonservers serve the same repository behind the one gateway (replica 1's metrics on
metrics_port, the others' on free ports). If a tritonserver or the gateway dies, the watchdog
notices within a poll interval, logs why, and restarts it with backoff (replica.py); meanwhile
the gateway sends to the other replicas, or answers 503 / UNAVAILABLE (retryable) if none is
left. A rolling update (`rollout`) restarts the replicas one at a time onto the repository's
current contents, each drained at the gateway first.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from maas.base.errors import ServerError
from maas.base.triton.endpoints import (
    GATEWAY_METRICS_PORT,
    STACK_METRICS_PORT,
    free_port,
)

from .audit import AUDIT_SOCKET, AuditLog, Usage, UsageKey
from .embedded import EmbeddedServer, ServerOptions
from .gateway import Gateway, combined_pem
from .gateway_config import DEFAULT_MAX_WAIT_MS, GatewayOptions, MiB, ModelLimit, Upstream
from .keys import KeyFile
from .processes import Service
from .replica import Replica, RestartPolicy, describe_exit
from .serving_repo import ServedModel
from .stack_metrics import Restarts, StackMetricsServer
from .stubs import Stub

log = logging.getLogger("maas.serve")

LOOPBACK = "127.0.0.1"
MAX_REPLICAS = 16


def free_port_except(host: str, taken: set[int]) -> int:
    """A free port that is none of `taken`."""
    while (port := free_port(host)) in taken:
        pass
    return port


@dataclass(frozen=True)
class StackOptions:
    """The public face of `maas serve`: the server's options plus the gateway and restarts."""

    server: ServerOptions
    # False: Triton's own ports are the public ones (benchmarks of Triton alone); a single
    # malformed HTTP request can crash Triton 2.51 then, so maas serve always has the gateway.
    gateway: bool = True
    gateway_metrics_port: int = GATEWAY_METRICS_PORT
    stack_metrics_port: int = STACK_METRICS_PORT
    max_body_bytes: int = 32 * MiB
    max_wait_ms: int = DEFAULT_MAX_WAIT_MS  # how long a request may wait for its model
    limits: dict[str, ModelLimit] = field(default_factory=dict)  # per-model overrides
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    key_file: Path | None = None  # tenants and API keys; None: anyone who reaches the port
    audit_log: Path | None = None  # one JSON line per request (audit.py); None: no audit log
    replicas: int = 1  # tritonservers behind the gateway, each with the whole repository

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= MAX_REPLICAS:
            raise ServerError(f"replicas must be 1 to {MAX_REPLICAS}, got {self.replicas}")
        if self.replicas > 1 and not self.gateway:
            raise ServerError("several replicas need the gateway in front of them")
        if self.replicas > 1 and self.server.control_key:
            # A load or unload would reach one replica only; a rolling update changes them all.
            raise ServerError(
                "model control (--control-key) works with one replica; with several, change "
                "the repository and roll it out (SIGHUP to maas serve)"
            )


@dataclass(frozen=True)
class Endpoints:
    """Where a running stack answers, as clients address it (host:port; metrics as a URL)."""

    http: str
    grpc: str
    metrics: str

    def url(self, protocol: str) -> str:
        """host:port for `http` or `grpc`."""
        return self.grpc if protocol == "grpc" else self.http


def file_signature(path: Path | None) -> tuple[int, int] | None:
    """(modification time, size) of a file, None if it does not exist: enough to see a change."""
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


class ServingStack(Service):
    """Triton + gateway + watchdog; a context manager with the public endpoints."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.gateway: Gateway | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        if options.server.workdir is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="maas-serve-")
        self.workdir = options.server.workdir or Path(self._scratch.name if self._scratch else ".")
        # Triton's repository API key behind the gateway: the same on every replica, known
        # to this process (to reload a model whose stub died) and the gateway only.
        self.admin_key = secrets.token_urlsafe(24)
        self.restart_counts = Restarts()
        self._stopping = threading.Event()
        single = len(servers := self._replica_options()) == 1
        self.replicas = [
            Replica(
                index,
                EmbeddedServer(server),
                "tritonserver" if single else f"tritonserver replica {index + 1}",
                options.restart,
                self.restart_counts,
                self._stopping,
            )
            for index, server in enumerate(servers)
        ]
        self.triton = self.replicas[0].server  # its metrics are on the public metrics port
        self.metrics = StackMetricsServer(self, options.server.host, options.stack_metrics_port)
        self._watchdogs: list[threading.Thread] = []
        self._rolling = threading.Lock()
        self._keys_seen = file_signature(options.key_file)
        self.audit: AuditLog | None = None
        if options.audit_log is not None and options.gateway:
            self.audit = AuditLog(
                options.audit_log,
                self.workdir / "gateway" / AUDIT_SOCKET,
                tokens_urls=tuple(replica.server.metrics_url for replica in self.replicas),
            )

    def _replica_options(self) -> list[ServerOptions]:
        """Behind the gateway each Triton listens on loopback only, without TLS or user's key."""
        server = replace(self.options.server, workdir=self.workdir)
        if not self.options.gateway:
            return [server]
        # Not one of the stack's own ports: those are free too until their servers start.
        taken = {
            server.http_port,
            server.grpc_port,
            server.metrics_port,
            self.options.gateway_metrics_port,
            self.options.stack_metrics_port,
        }

        def take(host: str) -> int:
            taken.add(port := free_port_except(host, taken))
            return port

        return [
            replace(
                server,
                http_host=LOOPBACK,
                http_port=take(LOOPBACK),
                grpc_host=LOOPBACK,
                grpc_port=take(LOOPBACK),
                metrics_port=server.metrics_port if index == 0 else take(server.host),
                workdir=self.workdir if index == 0 else self.workdir / f"replica-{index + 1}",
                control_key=self.admin_key,
                tls_cert=None,
                tls_key=None,
            )
            for index in range(self.options.replicas)
        ]

    def _gateway_options(self) -> GatewayOptions:
        """The gateway's options: public ports, Triton's loopback ports, per-model limits."""
        server = self.options.server
        limits = {
            model.name: ModelLimit.for_config(model.config, self.options.max_wait_ms)
            for model in self.triton.served
        }
        limits.update(self.options.limits)
        key = server.control_key
        return GatewayOptions(
            host=server.host,
            http_port=server.http_port,
            grpc_port=server.grpc_port,
            metrics_port=self.options.gateway_metrics_port,
            upstreams=tuple(
                Upstream(
                    LOOPBACK, replica.server.options.http_port, replica.server.options.grpc_port
                )
                for replica in self.replicas
            ),
            limits=limits,
            max_body_bytes=self.options.max_body_bytes,
            control_key_sha256=hashlib.sha256(key.encode()).hexdigest() if key else "",
            upstream_control_key=self.admin_key,
            tls_pem=self._tls_pem(),
            request_timeout_s=max(300, server.exit_timeout_s),
            key_file=self.options.key_file,
            audit_socket=self.audit.socket_path if self.audit else None,
        )

    def _tls_pem(self) -> Path | None:
        """The user's certificate and key in one file for the gateway, when TLS is asked for."""
        cert, key = self.options.server.tls_cert, self.options.server.tls_key
        if cert is None or key is None:
            return None
        return combined_pem(cert, key, self.workdir)

    # Endpoints, as clients see them.
    @property
    def http_url(self) -> str:
        """host:port of the public HTTP endpoint."""
        server = self.options.server
        return f"{server.host}:{server.http_port}"

    @property
    def endpoints(self) -> Endpoints:
        """Every public endpoint of the stack."""
        return Endpoints(self.http_url, self.grpc_url, self.metrics_url)

    @property
    def grpc_url(self) -> str:
        """host:port of the public gRPC endpoint."""
        server = self.options.server
        return f"{server.host}:{server.grpc_port}"

    @property
    def metrics_url(self) -> str:
        """URL of Triton's Prometheus metrics."""
        return self.triton.metrics_url

    @property
    def gateway_metrics_url(self) -> str:
        """URL of the gateway's Prometheus metrics, when there is a gateway."""
        if self.gateway is None:
            return ""
        return f"http://{self.options.server.host}:{self.options.gateway_metrics_port}/metrics"

    @property
    def stack_metrics_url(self) -> str:
        """URL of the stack's own metrics (restarts, memory)."""
        return self.metrics.url

    @property
    def served(self) -> list[ServedModel]:
        """The models being served."""
        return self.triton.served

    @property
    def log_path(self) -> Path:
        """Triton's log."""
        return self.triton.log_path

    @property
    def http_protection(self) -> str:
        """One line on what guards the public endpoints."""
        if self.gateway is not None:
            where = ", ".join(
                f"{replica.server.http_url} {replica.server.grpc_url}" for replica in self.replicas
            )
            return (
                "gateway (HAProxy): request checks, per-model admission, model control "
                f"{'with a key' if self.options.server.control_key else 'refused'}; "
                f"Triton on loopback ({where})"
            )
        return "UNPROTECTED: Triton's own ports are public; one malformed request can crash it"

    def process_ids(self) -> dict[str, int]:
        """The stack's processes by role, those running now (the stubs aside)."""
        pids = {
            "tritonserver" + (f"-{replica.index + 1}" if replica.index else ""): replica.server.pid
            for replica in self.replicas
        }
        pids["gateway"] = self.gateway.pid if self.gateway is not None else None
        return {role: pid for role, pid in pids.items() if pid is not None}

    def current_stubs(self) -> list[Stub]:
        """The Python-backend stubs running now, of every replica."""
        return [stub for replica in self.replicas for stub in replica.server.stubs()]

    def usage_now(self) -> dict[UsageKey, Usage]:
        """Requests per tenant, model and protocol so far (empty without the audit log)."""
        return self.audit.usage_now() if self.audit else {}

    def start(self) -> ServingStack:
        """Listen for the stack's metrics, then start Triton, the gateway and the watchdog."""
        # The metrics port is held first: Triton takes seconds to start, and a port only
        # checked free at the start can be taken meanwhile (an outgoing connection's port).
        self.metrics.start()
        try:
            for replica in self.replicas:
                replica.server.launch()  # all at once: they load their models side by side
            for replica in self.replicas:
                replica.server.wait_ready()
            if self.options.gateway:
                if self.audit is not None:
                    (self.workdir / "gateway").mkdir(parents=True, exist_ok=True)
                    self.audit.start()  # listening before the gateway sends
                self.gateway = Gateway(self._gateway_options(), self.workdir / "gateway")
                self.gateway.start()
        except BaseException:
            self.stop()
            raise
        self._watchdogs = [
            threading.Thread(target=self._watch, name="maas-watchdog", daemon=True),
            *(
                threading.Thread(
                    target=replica.watch, name=f"maas-replica-{replica.index + 1}", daemon=True
                )
                for replica in self.replicas
            ),
        ]
        for thread in self._watchdogs:
            thread.start()
        return self

    def is_ready(self) -> bool:
        """Whether Triton is up and ready (the gateway itself is checked by the watchdog)."""
        return self.triton.is_ready()

    def log_tail(self) -> str:
        """The end of Triton's log."""
        return self.triton.log_tail()

    def _watch(self) -> None:
        """The gateway's watchdog (each replica has its own): revive it, follow the keys."""
        while not self._stopping.wait(self.options.restart.poll_s):
            self._revive_gateway()
            self._follow_key_file()

    def rollout(self) -> None:
        """Restart the replicas one at a time onto the repository's current contents.

        Each is drained at the gateway first (no new requests; those in flight finish), then
        restarted, and takes requests again once it is ready and the gateway's checks agree:
        every answer comes whole from the old or the new version. With one replica, requests
        wait at the gateway meanwhile (and are refused past its queue).
        """
        gateway = self.gateway
        if gateway is None:
            raise ServerError("a rolling update needs the gateway")
        if not self._rolling.acquire(blocking=False):
            raise ServerError("a rolling update is already running")
        try:
            for replica in self.replicas:
                with replica.restarting:
                    self._roll(replica, gateway)
        finally:
            self._rolling.release()

    def _roll(self, replica: Replica, gateway: Gateway) -> None:
        count = len(self.replicas)
        log.warning("rollout: draining %s (%d of %d)", replica.label, replica.index + 1, count)
        gateway.set_replica_state(replica.index, "drain")
        deadline = time.monotonic() + self.options.server.exit_timeout_s
        while gateway.replica_in_flight(replica.index) and time.monotonic() < deadline:
            if self._stopping.wait(0.05):
                return
        replica.server.stop()  # SIGTERM: Triton ends its stubs and frees their regions
        if not replica.relaunch() or not replica.server.running:
            raise ServerError(f"rollout stopped: {replica.label} did not come back ready")
        gateway.set_replica_state(replica.index, "ready")
        deadline = time.monotonic() + 30
        while self.options.replicas > 1 and not gateway.replica_up(replica.index):
            if self._stopping.wait(0.1) or time.monotonic() > deadline:
                raise ServerError(f"rollout stopped: the gateway does not see {replica.label} up")
        log.warning("rollout: %s serves the new repository", replica.label)

    def _revive_gateway(self) -> None:
        """Restart a gateway that died; the next poll tries again if this attempt fails."""
        gateway = self.gateway
        if gateway is None or gateway.returncode is None:
            return
        log.error("the gateway %s; restarting it", describe_exit(gateway.returncode))
        try:
            gateway.start()
        except ServerError as failure:
            log.error("gateway restart failed: %s", failure)
            return
        self.restart_counts.gateway += 1
        log.warning("the gateway is back (restart %d)", self.restart_counts.gateway)

    def _follow_key_file(self) -> None:
        """Hand a changed key file to the gateway; a bad one is logged and the old one kept."""
        key_file, gateway = self.options.key_file, self.gateway
        seen = file_signature(key_file)
        if key_file is None or gateway is None or seen == self._keys_seen:
            return
        try:
            keys = KeyFile.load(key_file)
            gateway.update_keys(keys)
        except ServerError as failure:
            log.error("the key file changed but was not applied: %s", failure)
            return  # retried at the next poll: the signature is not taken
        self._keys_seen = seen
        log.info(
            "keys: %d active key(s) of %d tenant(s) applied",
            len(keys.active_keys()),
            len(keys.tenants),
        )

    def stop(self) -> None:
        """Stop the watchdogs, then let the gateway and Triton finish what is in flight."""
        self._stopping.set()
        self.metrics.stop()
        for thread in self._watchdogs:
            thread.join()
        self._watchdogs = []
        if self.gateway is not None:
            self.gateway.stop(timeout_s=self.options.server.exit_timeout_s + 10)
        if self.audit is not None:
            self.audit.stop()
        for replica in self.replicas:
            replica.server.stop()
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
