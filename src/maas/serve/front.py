"""The public HTTP endpoint: Debian's nginx with its Lua module in front of Triton's loopback port.

Triton 2.51's HTTP server dies on single malformed requests (a declared shape far over
max_batch_size aborts it; a JSON document of 4 MiB or more crashes it). The front limits body
sizes, checks every inference request against the model's config (`maas_front.lua`), answers in
Triton's own JSON error format, and keeps admin APIs off the public port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from maas.base.errors import FrontUnavailableError, ServerError

from .processes import end_process

LUA_DIR = Path(__file__).parent / "nginx"
MODULE_DIRS = (Path("/usr/lib/nginx/modules"), Path("/usr/share/nginx/modules"))
MODULES = ("ndk_http_module.so", "ngx_http_lua_module.so")
INSTALL_HINT = "apt-get install nginx-light libnginx-mod-http-lua lua-cjson"
NGINX_ENV = "MAAS_NGINX"  # path of the nginx binary, where it is not the one on PATH
MiB = 1024 * 1024


@dataclass(frozen=True)
class FrontOptions:
    """Where the front listens, where Triton's HTTP port is, and what it lets through."""

    host: str
    port: int
    upstream_port: int  # Triton's HTTP port, on loopback
    upstream_host: str = "127.0.0.1"  # another host only for a Triton elsewhere (maas front)
    max_body_bytes: int = 32 * MiB  # ResNet-50 at batch 16 as binary tensors is 9.2 MiB
    # Triton 2.51 crashes on a JSON document of 4 MiB; binary tensors do not count towards it.
    max_json_bytes: int = 3 * MiB
    read_timeout_s: int = 300
    workers: str = "auto"
    model_control: bool = False  # whether the repository API is on (behind Triton's key check)

    def __post_init__(self) -> None:
        if not 0 < self.max_json_bytes < 4 * MiB:
            raise ServerError(
                f"the JSON limit must be 1 byte to just under 4 MiB (Triton crashes at 4 MiB), "
                f"got {self.max_json_bytes}"
            )
        if self.max_body_bytes < self.max_json_bytes:
            raise ServerError("the body limit must be at least the JSON limit")


@dataclass(frozen=True)
class Nginx:
    """An nginx binary and the dynamic modules the front needs."""

    binary: Path
    modules: tuple[Path, ...]

    @classmethod
    def locate(cls) -> Nginx:
        """Find nginx ($MAAS_NGINX, else on PATH) and its Lua module, or say what to install."""
        chosen = os.environ.get(NGINX_ENV)
        if chosen is not None:
            found = chosen if os.access(chosen, os.X_OK) and Path(chosen).is_file() else None
        else:
            found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
        if found is None:
            raise FrontUnavailableError(
                f"nginx is not installed ({INSTALL_HINT})"
                if chosen is None
                else f"{NGINX_ENV}={chosen} is not an executable file"
            )
        for folder in MODULE_DIRS:
            modules = tuple(folder / name for name in MODULES)
            if all(module.is_file() for module in modules):
                return cls(Path(found), modules)
        raise FrontUnavailableError(f"nginx's Lua module is not installed ({INSTALL_HINT})")


ERROR_BODY = '{"error":"%s"}'  # Triton's JSON error form


def render_config(options: FrontOptions, nginx: Nginx, prefix: Path) -> str:
    """nginx.conf for the front; every path inside prefix."""
    modules = "\n".join(f"load_module {module};" for module in nginx.modules)
    user = "user nobody nogroup;" if os.geteuid() == 0 else ""  # workers drop root
    return f"""# Written by maas serve; regenerated at every start.
{modules}
{user}
worker_processes {options.workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}

http {{
{http_settings(options, prefix)}
    upstream triton {{
        server {options.upstream_host}:{options.upstream_port};
        keepalive 64;
    }}

    server {{
{server_settings(options)}
{infer_locations()}
{other_locations(options)}
{error_locations(options)}
    }}
}}
"""


def http_settings(options: FrontOptions, prefix: Path) -> str:
    """The http block's settings: Lua checks, temp paths inside prefix, body buffering."""
    return f"""    access_log off;
    server_tokens off;
    lua_package_path "{LUA_DIR}/?.lua;;";
    init_by_lua_block {{
        require("maas_front").configure({{
            max_body_bytes = {options.max_body_bytes},
            max_json_bytes = {options.max_json_bytes},
        }})
    }}
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    # Whole bodies in memory: the checks read the JSON header, Triton gets the body in one go.
    client_max_body_size {options.max_body_bytes};
    client_body_buffer_size {options.max_body_bytes};
    client_body_in_single_buffer on;
    keepalive_requests 100000;
"""


def server_settings(options: FrontOptions) -> str:
    """The server block's listener, proxying, path checks and error pages."""
    encoded = ERROR_BODY % "encoded slashes, backslashes or NUL bytes are not allowed in paths"
    return f"""        listen {options.host}:{options.port} backlog=4096 reuseport;
        default_type application/json;

        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_read_timeout {options.read_timeout_s}s;
        proxy_max_temp_file_size 0;
        # nginx routes on the decoded, normalised path but passes the raw one on: refuse paths
        # whose raw and decoded forms can route differently (no model name needs these).
        if ($request_uri ~* "%(2f|5c|00)") {{
            return 400 '{encoded}';
        }}
        error_page 400 /_maas_error/400;
        error_page 403 /_maas_error/403;
        error_page 413 /_maas_error/413;
        error_page 502 503 504 /_maas_error/503;
"""


def infer_locations() -> str:
    """Inference through the Lua checks; shared memory from this host only."""
    return """\
        location ~ ^/v2/models/(?<maas_model>[^/]+)(?:/versions/(?<maas_version>[^/]+))?/infer$ {
            access_by_lua_block {
                require("maas_front").check_infer(ngx.var.maas_model, ngx.var.maas_version)
            }
            proxy_pass http://triton;
        }
        # Shared memory names regions on this host: only this host's clients may register them.
        location ~ ^/v2/(systemsharedmemory|cudasharedmemory)/ {
            allow 127.0.0.1;
            allow ::1;
            deny all;
            client_max_body_size 64k;
            proxy_pass http://triton;
        }"""


def other_locations(options: FrontOptions) -> str:
    """Everything but inference: refused routes, the repository API, the rest proxied."""
    not_found = ERROR_BODY % (
        "no such endpoint; inference is POST /v2/models/<name>[/versions/<n>]/infer"
    )
    control_off = ERROR_BODY % "model control is off on this server (maas serve --control-key)"
    repository = (
        ""  # Triton itself asks for the control key
        if options.model_control
        else f"        location ^~ /v2/repository {{ return 403 '{control_off}'; }}"
    )
    return f"""\
        # Anything else Triton could route to inference is refused: only the checked form passes.
        location ~ /(infer|generate|generate_stream)/?$ {{
            return 404 '{not_found}';
        }}
{repository}
        # Server-wide settings stay on Triton's loopback port.
        location ~ ^/v2/(logging|trace) {{
            return 403;
        }}
        location / {{
            client_max_body_size 64k;
            proxy_pass http://triton;
        }}
        location ^~ /_maas_config/ {{
            internal;
            rewrite ^/_maas_config(/.*)$ $1 break;
            proxy_method GET;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Inference-Header-Content-Length "";
            proxy_pass http://triton;
        }}"""


def error_locations(options: FrontOptions) -> str:
    """The bodies of the front's own error pages, in Triton's JSON error form."""
    pages = {
        400: "malformed HTTP request",
        403: "this API is not available on the public endpoint",
        413: f"the request body is over the limit of {options.max_body_bytes} bytes",
        503: "the model server is not running right now (restarting); retry",
    }
    location = "        location = /_maas_error/{0} {{ internal; return {0} '{1}'; }}"
    return "\n".join(location.format(code, ERROR_BODY % text) for code, text in pages.items())


def accepts_connections(host: str, port: int) -> bool:
    """Whether something listens on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class HttpFront:
    """The nginx process of the front; start() waits until it listens."""

    def __init__(self, options: FrontOptions, prefix: Path, nginx: Nginx | None = None) -> None:
        self.options = options
        self.prefix = prefix
        self.nginx = nginx or Nginx.locate()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        """The nginx.conf written at start."""
        return self.prefix / "nginx.conf"

    @property
    def log_path(self) -> Path:
        """The error log of nginx."""
        return self.prefix / "error.log"

    def _command(self, *extra: str) -> list[str]:
        paths = ["-p", str(self.prefix), "-e", str(self.log_path), "-c", str(self.config_path)]
        return [str(self.nginx.binary), *paths, *extra]

    def start(self, timeout_s: float = 10.0) -> HttpFront:
        """Write the config, check it with `nginx -t`, start nginx and wait until it listens."""
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.prefix.chmod(0o755)  # workers run as nobody when started by root
        self.config_path.write_text(render_config(self.options, self.nginx, self.prefix))
        test = subprocess.run(self._command("-t"), capture_output=True, text=True, check=False)
        if test.returncode != 0:
            raise FrontUnavailableError(
                f"nginx rejects the front's config ({INSTALL_HINT} may be missing):\n{test.stderr}"
            )
        with (self.prefix / "nginx.out").open("wb") as out:
            self._process = subprocess.Popen(
                self._command("-g", "daemon off;"),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while not accepts_connections(self.options.host, self.options.port):
            if self.returncode is not None or time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"nginx did not start:\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    @property
    def returncode(self) -> int | None:
        """The exit code once nginx has ended, else None."""
        return None if self._process is None else self._process.poll()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of nginx's error log."""
        if not self.log_path.is_file():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGQUIT: nginx finishes the requests in flight, then exits."""
        process, self._process = self._process, None
        if process is not None:
            end_process(process, signal.SIGQUIT, timeout_s)
