"""A real Prometheus for a running stack: its scrape config, and the process.

The binary is Debian's `prometheus` package (installed by the project's setup where root is
available), or any Prometheus 2.x named by `--prometheus` / $MAAS_PROMETHEUS.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from maas.base.errors import MonitorError, MonitorUnavailableError
from maas.base.triton.endpoints import GATEWAY_METRICS_PORT, METRICS_PORT, STACK_METRICS_PORT
from maas.serve.processes import Service, end_process

from .signals import JOBS

PROMETHEUS_ENV = "MAAS_PROMETHEUS"
RULES_FILE = "maas_rules.yml"
INSTALL_HINT = (
    "install Prometheus 2.x (Debian/Ubuntu: apt-get install prometheus; elsewhere a release "
    "from prometheus.io) and put it on PATH, or name it with --prometheus / $MAAS_PROMETHEUS"
)


@dataclass(frozen=True)
class StackUrls:
    """The metrics endpoints of one running stack."""

    triton: str
    gateway: str
    stack: str

    @classmethod
    def on_host(cls, host: str = "127.0.0.1") -> StackUrls:
        """The endpoints of a stack started with `maas serve`'s default ports on host."""
        return cls(
            f"http://{host}:{METRICS_PORT}/metrics",
            f"http://{host}:{GATEWAY_METRICS_PORT}/metrics",
            f"http://{host}:{STACK_METRICS_PORT}/metrics",
        )

    def by_job(self) -> dict[str, str]:
        """Prometheus job name → URL."""
        return {
            JOBS["triton"]: self.triton,
            JOBS["gateway"]: self.gateway,
            JOBS["stack"]: self.stack,
        }


def scrape_job(job: str, url: str) -> dict[str, Any]:
    """One scrape config: the URL split into scheme, target and path."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or not parts.port:
        raise MonitorError(f"a metrics URL must be http(s)://host:port/path, got {url!r}")
    return {
        "job_name": job,
        "scheme": parts.scheme,
        "metrics_path": parts.path or "/metrics",
        "static_configs": [{"targets": [parts.netloc]}],
    }


def render_prometheus_config(urls: StackUrls, scrape_interval_s: float) -> str:
    """prometheus.yml: the stack's three endpoints and the maas rules beside it."""
    interval = f"{int(scrape_interval_s * 1000)}ms"
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [RULES_FILE],
        "scrape_configs": [scrape_job(job, url) for job, url in urls.by_job().items()],
    }
    header = "# Written by maas (maas monitor); regenerated at every start.\n"
    return header + str(yaml.safe_dump(config, sort_keys=False))


@dataclass(frozen=True)
class PrometheusTools:
    """The prometheus binary and its promtool."""

    prometheus: Path
    promtool: Path

    @classmethod
    def locate(cls, chosen: Path | None = None) -> PrometheusTools:
        """The binary named, else $MAAS_PROMETHEUS, else prometheus on PATH; promtool beside it."""
        named = chosen or os.environ.get(PROMETHEUS_ENV) or shutil.which("prometheus")
        found = Path(named) if named else None
        if found is None:
            raise MonitorUnavailableError(f"no prometheus binary: {INSTALL_HINT}")
        if not (found.is_file() and os.access(found, os.X_OK)):
            raise MonitorUnavailableError(f"{found} is not an executable file: {INSTALL_HINT}")
        promtool = found.with_name("promtool")
        if not promtool.is_file():
            promtool = Path(shutil.which("promtool") or promtool)
        return cls(found, promtool)


@dataclass(frozen=True)
class PrometheusOptions:
    """Where Prometheus listens and keeps its data."""

    folder: Path  # prometheus.yml and the rules live here; the data below it
    host: str = "127.0.0.1"
    port: int = 9090
    retention: str = "15d"
    startup_timeout_s: float = 30.0

    @property
    def url(self) -> str:
        """Prometheus's base URL."""
        return f"http://{self.host}:{self.port}"


class PrometheusServer(Service):
    """A Prometheus process over a folder that holds prometheus.yml and the rules."""

    def __init__(self, options: PrometheusOptions, tools: PrometheusTools | None = None) -> None:
        self.options = options
        self.tools = tools or PrometheusTools.locate()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """Prometheus's own log (warnings and errors)."""
        return self.options.folder / "prometheus.log"

    def check_config(self) -> None:
        """`promtool check config`: a config or rule file it rejects is a clear error."""
        config = self.options.folder / "prometheus.yml"
        result = subprocess.run(
            [str(self.tools.promtool), "check", "config", str(config)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise MonitorError(f"promtool rejects {config}:\n{result.stdout}{result.stderr}")

    def command(self) -> list[str]:
        """The command line."""
        folder = self.options.folder
        return [
            str(self.tools.prometheus),
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--storage.tsdb.retention.time={self.options.retention}",
            f"--web.listen-address={self.options.host}:{self.options.port}",
            "--log.level=warn",
        ]

    def start(self) -> PrometheusServer:
        """Check the config, start Prometheus and wait until it is ready."""
        if self.tools.promtool.is_file():
            self.check_config()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + self.options.startup_timeout_s
        while not self.is_ready():
            if self.returncode is not None or time.monotonic() > deadline:
                self.stop()
                raise MonitorError(f"Prometheus did not start:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def is_ready(self) -> bool:
        """Whether /-/ready answers 200."""
        try:
            with urllib.request.urlopen(f"{self.options.url}/-/ready", timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    @property
    def returncode(self) -> int | None:
        """The exit code once Prometheus has ended, else None."""
        return None if self._process is None else self._process.poll()

    def log_tail(self, lines: int = 20) -> str:
        """The end of Prometheus's log."""
        if not self.log_path.is_file():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM (Prometheus flushes its head block), SIGKILL after a timeout."""
        process, self._process = self._process, None
        if process is not None:
            end_process(process, signal.SIGTERM, timeout_s=20)


def api_get(base_url: str, path: str, **params: str) -> Any:
    """GET one Prometheus HTTP API endpoint; its `data`, or a MonitorError with its message."""
    url = f"{base_url}{path}?{urllib.parse.urlencode(params)}" if params else f"{base_url}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            body = json.load(reply)
    except urllib.error.HTTPError as failure:
        body = json.loads(failure.read() or b"{}")
        raise MonitorError(f"Prometheus refused {path}: {body.get('error', failure)}") from failure
    except OSError as failure:
        raise MonitorError(f"cannot reach Prometheus at {base_url}: {failure}") from failure
    return body["data"]
