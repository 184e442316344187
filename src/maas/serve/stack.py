"""What `maas serve` runs: Triton, the gateway before it, and a watchdog that restarts them.

Public endpoints: the gateway (HAProxy) on host:http_port (HTTP) and host:grpc_port (gRPC), its
metrics on host:gateway_metrics_port, Triton's metrics on host:metrics_port, the stack's own
(restarts, memory) on host:stack_metrics_port. Triton's own HTTP
and gRPC ports are bound to loopback on free ports behind the gateway. If Triton or the gateway
dies, the watchdog notices within a poll interval, logs why, and restarts it with backoff;
meanwhile the gateway answers with 503 / UNAVAILABLE (retryable). If a model's Python stub dies
(Triton 2.51 keeps calling such a model ready and fails every request), the watchdog reloads
that model through the repository API, with a key only this process knows.
"""

from __future__ import annotations

import hashlib
import logging
import signal
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
    port_is_free,
)

from .audit import AUDIT_SOCKET, AuditLog, Usage, UsageKey
from .embedded import EmbeddedServer, ServerOptions
from .gateway import Gateway, combined_pem
from .gateway_config import DEFAULT_MAX_WAIT_MS, GatewayOptions, MiB, ModelLimit
from .keys import KeyFile
from .processes import Service
from .serving_repo import ServedModel
from .stack_metrics import Restarts, StackMetricsServer
from .stubs import Stub, remove_regions

log = logging.getLogger("maas.serve")

LOOPBACK = "127.0.0.1"


def free_port_except(host: str, taken: set[int]) -> int:
    """A free port that is none of `taken`."""
    while (port := free_port(host)) in taken:
        pass
    return port


@dataclass(frozen=True)
class RestartPolicy:
    """How the watchdog restarts a dead server: exponential backoff, reset after a calm spell."""

    poll_s: float = 0.2  # how often the server and its Python stubs are checked
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    calm_s: float = 60.0  # up this long without dying: the next crash starts at first_delay_s

    def delay(self, crashes_in_a_row: int) -> float:
        """Seconds to wait before restart number crashes_in_a_row (1-based)."""
        return float(min(self.max_delay_s, self.first_delay_s * 2 ** (crashes_in_a_row - 1)))


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
    restart: RestartPolicy = RestartPolicy()
    key_file: Path | None = None  # tenants and API keys; None: anyone who reaches the port
    audit_log: Path | None = None  # one JSON line per request (audit.py); None: no audit log


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


def describe_exit(code: int) -> str:
    """'killed by SIGSEGV' / 'exited with code 1'."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class ServingStack(Service):
    """Triton + gateway + watchdog; a context manager with the public endpoints."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.gateway: Gateway | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        if options.server.workdir is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="maas-serve-")
        self.workdir = options.server.workdir or Path(self._scratch.name if self._scratch else ".")
        self.triton = EmbeddedServer(self._triton_options())
        self.restart_counts = Restarts()
        self.metrics = StackMetricsServer(self, options.server.host, options.stack_metrics_port)
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._keys_seen = file_signature(options.key_file)
        self.audit: AuditLog | None = None
        if options.audit_log is not None and options.gateway:
            self.audit = AuditLog(
                options.audit_log,
                self.workdir / "gateway" / AUDIT_SOCKET,
                tokens_url=self.triton.metrics_url,
            )

    def _triton_options(self) -> ServerOptions:
        """Behind the gateway Triton listens on loopback only, without TLS or the user's key."""
        server = replace(self.options.server, workdir=self.workdir)
        if not self.options.gateway:
            return server
        # Not one of the stack's own ports: those are free too until their servers start.
        taken = {
            server.http_port,
            server.grpc_port,
            server.metrics_port,
            self.options.gateway_metrics_port,
            self.options.stack_metrics_port,
        }
        http_port = free_port_except(LOOPBACK, taken)
        return replace(
            server,
            http_host=LOOPBACK,
            http_port=http_port,
            grpc_host=LOOPBACK,
            grpc_port=free_port_except(LOOPBACK, taken | {http_port}),
            control_key="",
            tls_cert=None,
            tls_key=None,
        )

    def _gateway_options(self) -> GatewayOptions:
        """The gateway's options: public ports, Triton's loopback ports, per-model limits."""
        server, triton = self.options.server, self.triton.options
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
            upstream_http_port=triton.http_port,
            upstream_grpc_port=triton.grpc_port,
            limits=limits,
            max_body_bytes=self.options.max_body_bytes,
            control_key_sha256=hashlib.sha256(key.encode()).hexdigest() if key else "",
            upstream_control_key=self.triton.admin_key,
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
            return (
                "gateway (HAProxy): request checks, per-model admission, model control "
                f"{'with a key' if self.options.server.control_key else 'refused'}; "
                f"Triton on loopback ({self.triton.http_url}, {self.triton.grpc_url})"
            )
        return "UNPROTECTED: Triton's own ports are public; one malformed request can crash it"

    def process_ids(self) -> dict[str, int]:
        """The stack's processes by role, those running now (the stubs aside)."""
        gateway = self.gateway.pid if self.gateway is not None else None
        pids = {"tritonserver": self.triton.pid, "gateway": gateway}
        return {role: pid for role, pid in pids.items() if pid is not None}

    def current_stubs(self) -> list[Stub]:
        """The Python-backend stubs running now."""
        return self.triton.stubs()

    def usage_now(self) -> dict[UsageKey, Usage]:
        """Requests per tenant, model and protocol so far (empty without the audit log)."""
        return self.audit.usage_now() if self.audit else {}

    def start(self) -> ServingStack:
        """Start Triton, then the gateway, then the watchdog and the stack's metrics."""
        host, port = self.options.server.host, self.options.stack_metrics_port
        if not port_is_free(host, port):
            raise ServerError(
                f"stack metrics port {port} on {host} is already in use; pick another"
            )
        self.triton.start()
        if self.options.gateway:
            try:
                if self.audit is not None:
                    (self.workdir / "gateway").mkdir(parents=True, exist_ok=True)
                    self.audit.start()  # listening before the gateway sends
                self.gateway = Gateway(self._gateway_options(), self.workdir / "gateway")
                self.gateway.start()
            except ServerError:
                self.triton.stop()
                raise
        self._watchdog = threading.Thread(target=self._watch, name="maas-watchdog", daemon=True)
        self._watchdog.start()
        self.metrics.start()
        return self

    def is_ready(self) -> bool:
        """Whether Triton is up and ready (the gateway itself is checked by the watchdog)."""
        return self.triton.is_ready()

    def log_tail(self) -> str:
        """The end of Triton's log."""
        return self.triton.log_tail()

    def _watch(self) -> None:
        policy = self.options.restart
        crashes_in_a_row = 0
        up_since = time.monotonic()
        stubs = self.triton.stubs()
        while not self._stopping.wait(policy.poll_s):
            self._revive_gateway()
            self._follow_key_file()
            if self.triton.running:
                stubs = self._revive_stubs(stubs)
                continue
            code = self.triton.returncode
            if time.monotonic() - up_since > policy.calm_s:
                crashes_in_a_row = 0
            crashes_in_a_row += 1
            delay = policy.delay(crashes_in_a_row)
            log.error(
                "tritonserver %s; restart %d in %.1f s; its log ends:\n%s",
                "is not running" if code is None else describe_exit(code),
                crashes_in_a_row,
                delay,
                self.triton.log_tail(lines=5),
            )
            self._bury(stubs)
            if self._stopping.wait(delay) or not self._relaunch():
                return
            up_since = time.monotonic()  # the calm spell counts from this attempt
            if not self.triton.running:
                continue  # died or timed out starting: the next poll backs off further
            self.restart_counts.triton += 1
            log.warning("tritonserver is back and ready (restart %d)", self.restart_counts.triton)
            stubs = self.triton.stubs()

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

    def _bury(self, stubs: list[Stub]) -> None:
        """After a crash: kill the stubs left behind, reap the server, free its regions."""
        self.triton.kill_group()
        self.triton.stop()  # reap it and free its ports
        self._remove_regions({stub.region for stub in stubs})

    def _revive_stubs(self, known: list[Stub]) -> list[Stub]:
        """Reload every model whose Python stub died while Triton still calls it ready.

        Triton 2.51 does not restart a dead stub: the model stays "ready" and every request
        fails with "Stub process ... is not healthy". A model unloaded on purpose is not ready.
        """
        current = self.triton.stubs()
        alive = {stub.pid for stub in current}
        dead = [stub for stub in known if stub.pid not in alive]
        if not dead:
            return current
        for model in sorted({stub.model for stub in dead}):
            now = sum(1 for stub in current if stub.model == model)
            before = sum(1 for stub in known if stub.model == model)
            if now >= before or not self.triton.model_ready(model):
                continue  # replaced by a reload, or unloaded on purpose
            log.error("the Python stub of model %s died; reloading the model", model)
            try:
                self.triton.reload_model(model)
            except ServerError as failure:
                log.error("%s", failure)
                continue
            self.restart_counts.stub_reloaded(model)
            log.warning("model %s reloaded with a new stub", model)
        # The reload's new instances have new regions; the dead ones' are ours to remove.
        self._remove_regions({stub.region for stub in dead})
        return self.triton.stubs()

    @staticmethod
    def _remove_regions(names: set[str]) -> None:
        removed = remove_regions(names)
        if removed:
            log.warning("removed %d Python-backend region(s) of dead stubs", len(removed))

    def _relaunch(self) -> bool:
        """Start Triton again and wait until it is ready or gone; False if stopping meanwhile."""
        try:
            self.triton.launch()
        except ServerError as failure:
            log.error("restart failed: %s", failure)
            return True  # the next poll sees no process and backs off again
        deadline = time.monotonic() + self.triton.options.startup_timeout_s
        while not self._stopping.wait(0.25):
            if self.triton.returncode is not None or self.triton.is_ready():
                return True
            if time.monotonic() > deadline:
                log.error("tritonserver was not ready in time; killing it to start over")
                self.triton.stop()
                return True
        return False

    def stop(self) -> None:
        """Stop the watchdog, then let the gateway and Triton finish what is in flight."""
        self._stopping.set()
        self.metrics.stop()
        if self._watchdog is not None:
            self._watchdog.join()
            self._watchdog = None
        if self.gateway is not None:
            self.gateway.stop(timeout_s=self.options.server.exit_timeout_s + 10)
        if self.audit is not None:
            self.audit.stop()
        self.triton.stop()
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
