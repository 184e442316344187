"""The embedded Triton Inference Server: the real `tritonserver` binary from nvidia-pytriton."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from maas.base.errors import ServerError
from maas.base.triton.endpoints import (
    GRPC_PORT,
    HTTP_PORT,
    METRICS_PORT,
    free_port,
    port_is_free,
)
from maas.base.triton.repository import ModelRepository

from .distribution import TritonDistribution, library_path
from .processes import Service, end_process
from .serving_repo import ServedModel, build_serving_repository
from .stubs import STUB_NAME, Stub, stub_of

LOG_TAIL_LINES = 40


CONTROL_HEADER = "maas-control-key"  # HTTP header of the model control key
GRPC_CONTROL_HEADER = f"triton-grpc-protocol-{CONTROL_HEADER}"  # gRPC metadata: Triton's prefix
CONTROL_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,}")


@dataclass(frozen=True)
class ServerOptions:
    """How to run the embedded server."""

    repository: Path
    http_port: int = HTTP_PORT
    grpc_port: int = GRPC_PORT
    metrics_port: int = METRICS_PORT
    host: str = "127.0.0.1"
    log_verbose: int = 0
    workdir: Path | None = None  # where the serving repository and log go; a temp dir if None
    startup_timeout_s: float = 180.0
    exit_timeout_s: int = 30  # how long shutdown waits for in-flight requests
    padding_strategy: str = "buckets"  # how adapters batch variable-length text rows
    # Empty: model control off (the repository is served as it was at start). Set: models can be
    # loaded and unloaded over the API, by requests carrying this key in CONTROL_HEADER only.
    control_key: str = ""
    http_host: str = ""  # where Triton's HTTP port binds; host if empty (loopback behind a gateway)
    grpc_host: str = ""  # where Triton's gRPC port binds; host if empty
    # PEM files: both given, the public ports serve TLS only (clients need the CA: tls_root_cert);
    # behind the gateway both protocols, on Triton's own ports (no gateway) gRPC only.
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def __post_init__(self) -> None:
        if self.control_key and not CONTROL_KEY_PATTERN.fullmatch(self.control_key):
            raise ServerError(
                "the control key must be 16 or more characters of letters, digits, '-' or '_' "
                f"(got {len(self.control_key)} characters)"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ServerError("TLS needs both a certificate and its key")
        for pem in (self.tls_cert, self.tls_key):
            if pem is not None and not pem.is_file():
                raise ServerError(f"TLS file {pem} does not exist")
        ports = (self.http_port, self.grpc_port, self.metrics_port)
        if len(set(ports)) != 3:
            raise ServerError(f"HTTP, gRPC and metrics ports must differ, got {ports}")
        for port in ports:
            if not 0 < port < 65536:
                raise ServerError(f"port {port} is out of range 1-65535")

    @classmethod
    def on_free_ports(cls, repository: Path, **options: Any) -> ServerOptions:
        """Options with HTTP, gRPC and metrics on ports the OS reports free."""
        ports = {name: free_port() for name in ("http_port", "grpc_port", "metrics_port")}
        return cls(repository, **(ports | options))


# Clients ping idle connections every 30 s (maas.clients.transport.grpc_keepalive) so that NAT
# and load balancers keep them; Triton's defaults would answer such pings with GOAWAY
# "too_many_pings".
GRPC_KEEPALIVE_FLAGS = [
    "--grpc-keepalive-permit-without-calls=true",
    "--grpc-http2-max-pings-without-data=0",
    "--grpc-http2-min-recv-ping-interval-without-data=1000",
]
# Triton 2.51 has latency summaries (p50..p999 over a sliding window), not histograms: with them
# `maas top`, the alert rules and the dashboard read percentiles the server itself measured.
METRICS_FLAGS = ["--metrics-config=summary_latencies=true"]
# The gateway's usage headers (tenant, model called, protocol) reach the Python steps as request
# parameters, through ensembles too: the tokenizer meters tokens per tenant with them.
USAGE_HEADERS = "^maas-(tenant|model|protocol)$"
USAGE_FLAGS = [
    f"--http-header-forward-pattern={USAGE_HEADERS}",
    f"--grpc-header-forward-pattern={USAGE_HEADERS}",
]


def tls_flags(cert: Path | None, key: Path | None) -> list[str]:
    """Triton flags for gRPC over TLS, or none."""
    if cert is None or key is None:
        return []
    return ["--grpc-use-ssl=true", f"--grpc-server-cert={cert}", f"--grpc-server-key={key}"]


def control_flags(key: str) -> list[str]:
    """Triton flags for model control: its API on, behind a key header.

    Without a user key, maas still runs with one of its own (random per process) so that it can
    reload a model whose Python stub died; nobody else can load or unload anything.
    """
    restricted = f"model-repository:{CONTROL_HEADER}={key}"  # api:header=value in 2.51
    return [
        "--model-control-mode=explicit",
        "--load-model=*",
        f"--http-restricted-api={restricted}",
        f"--grpc-restricted-protocol={restricted}",
    ]


@dataclass(frozen=True)
class TritonPaths:
    """Where a tritonserver finds its serving repository, backends and cache."""

    repository: Path
    backends: Path
    cache: Path


def triton_arguments(paths: TritonPaths, options: ServerOptions, admin_key: str) -> list[str]:
    """Flags of tritonserver, the binary aside: one function for local replicas and pods alike."""
    return [
        f"--model-repository={paths.repository}",
        f"--backend-directory={paths.backends}",
        f"--cache-directory={paths.cache}",
        f"--http-address={options.http_host or options.host}",
        f"--http-port={options.http_port}",
        f"--grpc-address={options.grpc_host or options.host}",
        f"--grpc-port={options.grpc_port}",
        f"--metrics-address={options.host}",
        f"--metrics-port={options.metrics_port}",
        f"--log-verbose={options.log_verbose}",
        f"--exit-timeout-secs={options.exit_timeout_s}",
        "--strict-readiness=true",
        *control_flags(admin_key),
        *GRPC_KEEPALIVE_FLAGS,
        *METRICS_FLAGS,
        *USAGE_FLAGS,
        *tls_flags(options.tls_cert, options.tls_key),
    ]


class EmbeddedServer(Service):
    """A tritonserver process serving a canonical repository; a context manager."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.served: list[ServedModel] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self.workdir = options.workdir or Path()
        self.log_path = Path()
        self.serving = Path()  # the repository Triton serves, built at launch
        # The repository API's key: the user's, or a random one only this process knows.
        self.admin_key = options.control_key or secrets.token_urlsafe(24)

    @property
    def http_host(self) -> str:
        """The address Triton's HTTP port binds."""
        return self.options.http_host or self.options.host

    @property
    def grpc_host(self) -> str:
        """The address Triton's gRPC port binds."""
        return self.options.grpc_host or self.options.host

    @property
    def http_url(self) -> str:
        """host:port of the HTTP/REST endpoint."""
        return f"{self.http_host}:{self.options.http_port}"

    @property
    def grpc_url(self) -> str:
        """host:port of the gRPC endpoint."""
        return f"{self.grpc_host}:{self.options.grpc_port}"

    @property
    def metrics_url(self) -> str:
        """URL of the Prometheus metrics."""
        return f"http://{self.options.host}:{self.options.metrics_port}/metrics"

    def start(self) -> EmbeddedServer:
        """Prepare the serving repository, start tritonserver and wait until it is ready."""
        self.launch()
        self.wait_ready()
        return self

    def launch(self) -> None:
        """Prepare the serving repository and start tritonserver; do not wait for it."""
        distribution = TritonDistribution.locate()
        self._check_ports()
        self._prepare_workdir()
        backends = self._install_backends(distribution)
        self.serving = (self.workdir / "repository").resolve()
        self.served = build_serving_repository(
            ModelRepository(self.options.repository), self.serving, self.options.padding_strategy
        )
        command = self._command(distribution, self.serving, backends)
        env = {
            **os.environ,
            "LD_LIBRARY_PATH": library_path(distribution.libraries),
            # The stub finds this interpreter's environment through the first python on PATH.
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        }
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def _check_ports(self) -> None:
        options = self.options
        for label, host, port in (
            ("HTTP", self.http_host, options.http_port),
            ("gRPC", self.grpc_host, options.grpc_port),
            ("metrics", options.host, options.metrics_port),
        ):
            if not port_is_free(host, port):
                raise ServerError(f"{label} port {port} on {host} is already in use; pick another")

    def _prepare_workdir(self) -> None:
        if self.options.workdir is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="maas-serve-")
            self.workdir = Path(self._scratch.name)
        else:
            self.workdir = self.options.workdir
            if (self.workdir / "repository").exists():
                shutil.rmtree(self.workdir / "repository")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "tritonserver.log"

    def _install_backends(self, distribution: TritonDistribution) -> Path:
        # The stub must sit beside libtriton_python.so; the wheel keeps it apart per Python version.
        backends = self.workdir / "backends"
        python = backends / "python"
        if python.exists():
            shutil.rmtree(python)
        shutil.copytree(
            distribution.python_backend, python, ignore=shutil.ignore_patterns("__pycache__")
        )
        shutil.copy2(distribution.stub, python / STUB_NAME)
        return backends

    def _command(
        self, distribution: TritonDistribution, serving: Path, backends: Path
    ) -> list[str]:
        paths = TritonPaths(serving, backends, self.workdir / "cache")
        return [str(distribution.binary), *triton_arguments(paths, self.options, self.admin_key)]

    def is_ready(self) -> bool:
        """Whether /v2/health/ready answers 200."""
        return self._get_ok("/v2/health/ready")

    def _get_ok(self, path: str) -> bool:
        url = f"http://{self.http_url}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def model_ready(self, model: str) -> bool:
        """Whether Triton reports the model ready."""
        return self._get_ok(f"/v2/models/{model}/ready")

    def stubs(self) -> list[Stub]:
        """The Python stubs this tritonserver runs now."""
        if self._process is None or self._process.poll() is not None:
            return []
        try:
            children = psutil.Process(self._process.pid).children()
        except psutil.Error:
            return []
        found = []
        for child in children:
            try:
                described = stub_of(child.cmdline(), self.serving)
            except psutil.Error:  # ended meanwhile
                continue
            if described is not None:
                found.append(Stub(child.pid, *described))
        return found

    def reload_model(self, model: str) -> None:
        """Load the model again (new instances, new stubs) through the repository API."""
        url = f"http://{self.http_url}/v2/repository/models/{model}/load"
        request = urllib.request.Request(
            url, data=b"", method="POST", headers={CONTROL_HEADER: self.admin_key}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.options.startup_timeout_s):
                return
        except urllib.error.HTTPError as failure:
            detail = failure.read().decode(errors="replace")
            raise ServerError(f"reloading {model} failed: {failure.code} {detail}") from failure
        except OSError as failure:
            raise ServerError(f"reloading {model} failed: {failure}") from failure

    def kill_group(self) -> None:
        """SIGKILL whatever is left of the server's process group (its stubs after a crash)."""
        if self._process is None:
            return
        try:
            os.killpg(self._process.pid, signal.SIGKILL)  # start_new_session: pgid == pid
        except (ProcessLookupError, PermissionError):
            return

    def wait_ready(self) -> None:
        """Block until ready; ServerError with the log's tail if it dies or takes too long."""
        deadline = time.monotonic() + self.options.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise ServerError(f"tritonserver exited during start-up:\n{self.log_tail()}")
            if self.is_ready():
                return
            time.sleep(0.25)
        self.stop()
        waited = self.options.startup_timeout_s
        raise ServerError(f"tritonserver was not ready within {waited:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the server log, the errors first."""
        if not self.log_path.is_file():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        errors = [line for line in text if line.startswith("E") or "failed to load" in line]
        shown = [*errors[-10:], "…", *text[-lines:]] if errors else text[-lines:]
        return "\n".join(shown)

    @property
    def pid(self) -> int | None:
        """The tritonserver process id while it runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def running(self) -> bool:
        """Whether the tritonserver process exists and has not ended."""
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return None if self._process is None else self._process.poll()

    def stop(self) -> None:
        """SIGTERM: Triton stops taking requests and lets in-flight ones finish, then exits."""
        process, self._process = self._process, None
        if process is not None:
            end_process(process, signal.SIGTERM, self.options.exit_timeout_s + 10)
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
