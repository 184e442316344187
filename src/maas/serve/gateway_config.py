"""The gateway's HAProxy configuration, written from typed options by small functions.

One HAProxy fronts both protocols: HTTP/1.1 on the public HTTP port, gRPC (HTTP/2) on the public
gRPC port. Inference requests are routed to one backend per model and protocol whose server
`maxconn` bounds the requests in flight at Triton and whose queue bounds the wait; past either,
the gateway answers at once (HTTP 503, gRPC UNAVAILABLE) naming the model and the limit. HTTP
inference requests are checked against the model's config first (`maas_gateway.lua`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from maas.base.errors import ServerError
from maas.base.triton.config import ModelConfig

from . import gateway_auth as auth

MiB = 1024 * 1024
LUA_DIR = Path(__file__).parent / "haproxy"
GRPC_SERVICE = "/inference.GRPCInferenceService/"
# gRPC methods of Triton's repository API (model control); refused unless a control key is set.
GRPC_CONTROL_METHODS = ("RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload")
CONTROL_HEADER = "maas-control-key"
DEFAULT_MAX_WAIT_MS = 2000  # long enough for one full batch of ResNet-50 on 2 cores
MAX_OTHER_BODY_BYTES = 64 * 1024  # bodies of anything but inference (registrations, control)


@dataclass(frozen=True)
class ModelLimit:
    """Admission for one model: requests at Triton at once, requests waiting, and for how long."""

    max_in_flight: int
    max_queue: int
    max_wait_ms: int = DEFAULT_MAX_WAIT_MS

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.max_queue < 1 or self.max_wait_ms < 1:
            # HAProxy reads maxqueue 0 as "unbounded": a queue of at least one it is.
            raise ServerError(
                "a model limit needs ≥ 1 request in flight, a queue ≥ 1 and a wait ≥ 1 ms, got "
                f"{self.max_in_flight}/{self.max_queue}/{self.max_wait_ms} ms"
            )

    @classmethod
    def for_config(cls, config: ModelConfig, max_wait_ms: int = DEFAULT_MAX_WAIT_MS) -> ModelLimit:
        """Defaults from the model's config: in flight = instances × batch, a queue as long.

        A generation model (decoupled) holds a request for its whole stream: in flight is what
        its engine takes (slots decoding + its own waiting line), the gateway's queue one more
        set of slots.
        """
        if config.model_transaction_policy.decoupled and "slots" in config.parameters:
            slots = int(config.parameters["slots"].string_value)
            waiting = int(config.parameters["max_waiting"].string_value)
            return cls(slots + waiting, slots, max_wait_ms)
        instances = sum(group.count or 1 for group in config.instance_group) or 1
        in_flight = instances * max(1, config.max_batch_size)
        return cls(in_flight, in_flight, max_wait_ms)

    def describe(self) -> str:
        """The limit in words, for refusals."""
        return (
            f"{self.max_in_flight} requests in flight and {self.max_queue} waiting "
            f"up to {self.max_wait_ms} ms"
        )


@dataclass(frozen=True)
class Upstream:
    """One tritonserver behind the gateway: its HTTP and gRPC ports on host."""

    host: str
    http_port: int
    grpc_port: int

    @property
    def http(self) -> str:
        """host:port of its HTTP endpoint."""
        return f"{self.host}:{self.http_port}"

    @property
    def grpc(self) -> str:
        """host:port of its gRPC endpoint."""
        return f"{self.host}:{self.grpc_port}"


@dataclass(frozen=True)
class GatewayOptions:
    """Where the gateway listens, where Triton is, and what it lets through."""

    host: str
    http_port: int
    grpc_port: int
    metrics_port: int  # the gateway's own Prometheus exporter
    # The tritonservers (replicas of one repository), loopback for maas serve: requests go to
    # the one with the fewest in flight; with several, a dead one is skipped and retried past.
    upstreams: tuple[Upstream, ...]
    limits: dict[str, ModelLimit] = field(default_factory=dict)  # models with admission control
    max_body_bytes: int = 32 * MiB  # ResNet-50 at batch 16 as binary tensors is 9.2 MiB
    # Triton 2.51 crashes on a JSON document of 4 MiB; binary tensors do not count towards it.
    max_json_bytes: int = 3 * MiB
    control_key_sha256: str = ""  # hex digest of the control key; empty: model control refused
    upstream_control_key: str = ""  # the key Triton's repository API wants (never the user's)
    tls_pem: Path | None = None  # certificate and key in one PEM file: both ports serve TLS only
    request_timeout_s: int = 300
    threads: int = 2
    key_file: Path | None = None  # tenants and API keys (gateway_auth); None: anyone may call
    audit_socket: Path | None = None  # where one log line per request goes (audit.py); None: off

    def __post_init__(self) -> None:
        if not 0 < self.max_json_bytes < 4 * MiB:
            raise ServerError(
                f"the JSON limit must be 1 byte to just under 4 MiB (Triton crashes at 4 MiB), "
                f"got {self.max_json_bytes}"
            )
        if not self.upstreams:
            raise ServerError("the gateway needs at least one tritonserver behind it")
        if self.max_body_bytes < self.max_json_bytes:
            raise ServerError("the body limit must be at least the JSON limit")
        for model in self.limits:
            if not model.replace("-", "_").replace(".", "_").isidentifier():
                raise ServerError(f"model name {model!r} cannot name a gateway backend")

    @property
    def replicated(self) -> bool:
        """Whether several tritonservers share the load (health checks, retries, no shm)."""
        return len(self.upstreams) > 1


def backend_name(protocol: str, model: str) -> str:
    """The backend that admits one model's requests over one protocol."""
    return f"{protocol}_model_{model}"


def refused_backend_name(protocol: str, model: str) -> str:
    """The backend that answers (and counts) the requests the gateway refuses for a model."""
    return f"{protocol}_refused_{model}"


def render_config(options: GatewayOptions, prefix: Path) -> str:
    """haproxy.cfg for the gateway; every file it names lies inside prefix or beside this code."""
    sections = [
        global_section(options, prefix),
        defaults_section(options),
        http_frontend(options, prefix),
        grpc_frontend(options, prefix),
        metrics_frontend(options),
        upstream_backends(options),
        *([auth.tenants_table()] if options.key_file else []),
        *([audit_ring(options.audit_socket)] if options.audit_socket else []),
        *(model_backends(options, model, limit, prefix) for model, limit in options.limits.items()),
    ]
    return "# Written by maas; regenerated at every start.\n" + "\n".join(sections)


def global_section(options: GatewayOptions, prefix: Path) -> str:
    """Process-wide settings: Lua, buffers big enough for a whole JSON header, threads."""
    # A request's JSON header must fit one buffer to be checked; binary tensors stream past it.
    bufsize = options.max_json_bytes + 64 * 1024
    # A thread keeps freed buffers for reuse up to its hot size (512 KiB by default): smaller
    # than one such buffer, so every request would map and fault in fresh ones. Measured: a
    # third of the gateway's CPU per small request, and 0.1-0.2 ms of its latency.
    hot_size = 8 * bufsize
    return f"""global
    nbthread {options.threads}
    tune.bufsize {bufsize}
    tune.memory.hot-size {hot_size}
    tune.lua.maxmem 256
    lua-prepend-path {LUA_DIR}/?.lua
    lua-prepend-path {prefix}/?.lua
    lua-load-per-thread {LUA_DIR}/maas_gateway.lua
    log stderr format short local0 warning
    stats socket {prefix / auth.RUNTIME_SOCKET} mode 600 level admin
"""


def defaults_section(options: GatewayOptions) -> str:
    """Timeouts and the errors the gateway itself answers, in Triton's JSON error form."""
    return f"""defaults
    mode http
    log global
    option abortonclose
    timeout connect 2s
    timeout client {options.request_timeout_s}s
    timeout server {options.request_timeout_s}s
    timeout http-request 30s
    timeout queue {DEFAULT_MAX_WAIT_MS}ms
    timeout client-fin 5s
    timeout tunnel 1h
"""


def tls(options: GatewayOptions, alpn: str) -> str:
    """The bind's TLS settings, when a certificate is given."""
    return f" ssl crt {options.tls_pem} alpn {alpn}" if options.tls_pem else ""


def answer(status: int, message: str, condition: str) -> str:
    """A rule that answers at the gateway, in Triton's JSON error form, when condition holds."""
    body = error_json(message)
    return (
        f"    http-request return status {status} content-type application/json "
        f"string '{body}' if {condition}\n"
    )


INFER_PATH = "^/v2/models/[^/]+(/versions/[^/]+)?/infer$"
GENERATE_PATH = "^/v2/models/[^/]+(/versions/[^/]+)?/generate(_stream)?$"
UNROUTED = "!{ var(txn.maas_backend) -m found }"  # refusals not counted in a model's backend


def http_frontend(options: GatewayOptions, prefix: Path) -> str:
    """HTTP/1.1: path checks, restricted APIs, size limits, request checks, then admission."""
    bind = f"{options.host}:{options.http_port}{tls(options, 'http/1.1')}"
    infer = f"{{ method POST }} {{ path_reg {INFER_PATH} }}"
    return (
        f"frontend http_in\n    bind {bind}\n"
        + audit_logging(options, "http", infer)
        + answer(
            400,
            "encoded slashes, backslashes or NUL bytes are not allowed in paths",
            "{ url_sub -i %2f %5c %00 }",
        )
        + answer(
            403,
            "this API is not available on the public endpoint",
            "{ path_reg ^/v2/(logging|trace) }",
        )
        + control_rule(options, "{ path_beg /v2/repository }")
        + answer(
            404,
            "no such endpoint; inference is POST /v2/models/<name>[/versions/<n>]/infer "
            "(or /generate, /generate_stream)",
            f"{{ path_reg /(infer|generate|generate_stream)/?$ }} !{{ path_reg {INFER_PATH} }} "
            f"!{{ path_reg {GENERATE_PATH} }}",
        )
        + (answer(400, SHM_REPLICATED, HTTP_SHM) if options.replicated else "")
        + answer(
            403,
            "shared memory can be registered from this host only",
            f"{HTTP_SHM} !{LOOPBACK}",
        )
        + http_model_variable(options)
        + http_tenant_rules(options, prefix, infer)
        + tenant_shared_memory(options, HTTP_SHM, "maas_check_shm_http")
        + f"""    http-request lua.maas_check_sizes if {maybe_over_a_size_limit(options)}
    http-request use-service lua.maas_refuse if {{ var(txn.maas_status) -m found }}
    http-request wait-for-body time 30s at-least {options.max_json_bytes} if {infer}
    http-request lua.maas_check_and_admit_http if {infer}
    http-request lua.maas_admit_generate if {{ path_reg {GENERATE_PATH} }}
{usage_headers(options, "http", infer)}\
    http-request use-service lua.maas_refuse if {{ var(txn.maas_status) -m found }} {UNROUTED}
    use_backend %[var(txn.maas_backend)] if {{ var(txn.maas_backend) -m found }}
    default_backend http_triton
"""
    )


LOOPBACK = "{ src 127.0.0.0/8 ::1 }"
HTTP_SHM = "{ path_reg ^/v2/(systemsharedmemory|cudasharedmemory)/ }"
GRPC_SHM = (
    "{ path_beg "
    + " ".join(f"{GRPC_SERVICE}{kind}SharedMemory" for kind in ("System", "Cuda"))
    + " }"
)


def tenant_shared_memory(options: GatewayOptions, selects: str, action: str) -> str:
    """With keys on, a tenant registers, lists and drops only regions named `<tenant>~…`."""
    if options.key_file is None:
        return ""
    return (
        f"    http-request wait-for-body time 5s at-least 4096 if {selects}\n"
        f"    http-request lua.{action} if {selects}\n"
    )


HTTP_OPEN = "{ path_beg /v2/health/ /v2/repository }"  # probes; control has its own key
HTTP_MODEL_PATH = "{ path_reg ^/v2/models/[^/]+(/|$) } !{ path /v2/models/stats }"
HTTP_VERSION_PATH = "{ path_reg ^/v2/models/[^/]+/versions/[^/]+ }"


def audit_format(protocol: str) -> str:
    """One JSON object per request: who, which model, what happened; no payload, no key."""
    text = lambda variable: f'"%[var({variable}),json(utf8s)]"'  # noqa: E731
    grpc_status = text("txn.maas_grpc_status") if protocol == "grpc" else '""'
    fields = {
        "time": "%[date(0,ms)]",
        "tenant": text(auth.TENANT),
        "model": text(auth.MODEL),
        "version": text("txn.maas_version"),
        "infer": text("txn.maas_infer"),
        "protocol": f'"{protocol}"',
        "status": "%ST",
        "grpc_status": grpc_status,
        "latency_ms": "%Ta",
        "server_ms": "%Tr",
        "bytes_in": "%U",
        "bytes_out": "%B",
        "items": text("txn.maas_items"),
    }
    return "{" + ",".join(f'"{name}":{value}' for name, value in fields.items()) + "}"


AUDIT_RING = "maas_audit"


def audit_ring(socket_path: Path) -> str:
    """The gateway's buffer of audit lines, streamed to maas serve; kept while it is away."""
    return f"""ring {AUDIT_RING}
    format raw
    maxlen 4096
    size {32 * MiB}
    timeout connect 5s
    timeout server 1h
    server audit unix@{socket_path}
"""


def audit_logging(options: GatewayOptions, protocol: str, infer: str) -> str:
    """The frontend's audit log: a line per request to maas serve's ring (health checks aside).

    Only with the audit on: the variables it alone logs are not set on every request otherwise.
    """
    if options.audit_socket is None:
        return ""
    rules = [
        "log global",
        f"log ring@{AUDIT_RING} local1 info",
        f"log-format '{audit_format(protocol)}'",
        f"http-request set-var(txn.maas_infer) str(1) if {infer}",
    ]
    if protocol == "http":
        rules += [
            "http-request set-log-level silent if { path_beg /v2/health/ }",
            f"http-request set-var(txn.maas_version) path,field(6,/) if {HTTP_VERSION_PATH}",
        ]
    else:
        # every response, the gateway's own refusals included; Triton's errors are in trailers
        rules += [
            f"http-request set-log-level silent if {GRPC_OPEN_HEALTH}",
            "http-after-response set-var(txn.maas_grpc_status) res.hdr(grpc-status)",
        ]
    return "".join(f"    {rule}\n" for rule in rules)


USAGE_HEADERS = {"maas-tenant": auth.TENANT, "maas-model": auth.MODEL}  # + maas-protocol


def usage_headers(options: GatewayOptions, protocol: str, infer: str) -> str:
    """Who calls which model how, for the Python steps that meter (the tokenizer's tokens).

    Set on every inference request while the audit is on, so a client cannot name another
    tenant; Triton forwards them as request parameters (embedded.USAGE_FLAGS).
    """
    if options.audit_socket is None:
        return ""
    rules = [f"set-header {name} %[var({variable})]" for name, variable in USAGE_HEADERS.items()]
    rules.append(f"set-header maas-protocol {protocol}")
    return "".join(f"    http-request {rule} if {infer}\n" for rule in rules)


def http_model_variable(options: GatewayOptions) -> str:
    """The model named in the path, for the tenant's access check and the audit log."""
    if options.key_file is None and options.audit_socket is None:
        return ""  # nothing reads it: no work on the hot path
    return f"    http-request set-var({auth.MODEL}) path,field(4,/) if {HTTP_MODEL_PATH}\n"


def http_tenant_rules(options: GatewayOptions, prefix: Path, infer: str) -> str:
    """Keys, model access and the tenant's limits, before any other work is done."""
    if options.key_file is None:
        return ""
    return auth.tenant_rules(prefix, HTTP_OPEN, infer, "http", check_model=True)


def maybe_over_a_size_limit(options: GatewayOptions) -> str:
    """An ACL true for every request the Lua size check might refuse, and few others.

    Each Lua action costs tens of microseconds of CPU whatever it does (measured: about a third
    of the gateway's cost per small request), so the size check runs only when a header says
    a limit may be passed; `maas_check_sizes` then decides and names the limit.
    """
    length = "req.hdr_val(content-length)"
    json_length = "req.hdr_val(inference-header-content-length)"
    return (
        f"{{ {length} gt {options.max_body_bytes} }}"
        f" || !{{ path_reg {INFER_PATH} }} {{ {length} gt {MAX_OTHER_BODY_BYTES} }}"
        f" || {{ {json_length} gt {options.max_json_bytes} }}"
        f" || !{{ req.hdr(inference-header-content-length) -m found }}"
        f" {{ {length} gt {options.max_json_bytes} }}"
    )


def control_rule(options: GatewayOptions, selects: str) -> str:
    """Refuse the repository API, or let it through with the right key only.

    A request with the user's key reaches Triton with Triton's own key instead, so the user's
    key is in no process's command line.
    """
    if not options.control_key_sha256:
        return answer(
            403, "model control is off on this server (maas serve --control-key)", selects
        )
    return (
        answer(
            403,
            "a valid maas-control-key header is needed for model control",
            f"{selects} !{{ {key_matches(options)} }}",
        )
        + f"    http-request set-header {CONTROL_HEADER} {upstream_key(options)} if {selects}\n"
    )


def grpc_frontend(options: GatewayOptions, prefix: Path) -> str:
    """The gRPC (HTTP/2) frontend: restricted methods, keys, then per-model admission."""
    infer = f"{{ path {GRPC_SERVICE}ModelInfer }}"
    return f"""frontend grpc_in
    bind {options.host}:{options.grpc_port} proto h2{tls(options, "h2")}
{audit_logging(options, "grpc", infer)}\
{grpc_control_rule(options)}
{grpc_shm_replicated(options)}\
    http-request return status 200 content-type application/grpc hdr grpc-status 7 \
        hdr grpc-message {GRPC_SHM_REFUSAL} if {GRPC_SHM} !{LOOPBACK}
{grpc_tenant_rules(options, prefix, infer)}\
{tenant_shared_memory(options, GRPC_SHM, "maas_check_shm_grpc")}\
    http-request wait-for-body time 30s at-least 512 if {infer}
    http-request lua.maas_admit_grpc if {infer}
{usage_headers(options, "grpc", infer)}\
{grpc_model_access(options, prefix)}\
    http-request use-service lua.maas_grpc_refuse if {{ var(txn.maas_grpc_refusal) -m found }} \
        {UNROUTED}
    use_backend %[var(txn.maas_backend)] if {{ var(txn.maas_backend) -m found }}
    default_backend grpc_triton
"""


# A region is registered with one tritonserver; the next request may go to another.
SHM_REPLICATED = (
    "shared memory is off while several replicas serve: a region lives in one of them; "
    "send tensors in the request, or serve one replica"
)


def grpc_shm_replicated(options: GatewayOptions) -> str:
    """With several replicas, the shared-memory methods answer FAILED_PRECONDITION."""
    if not options.replicated:
        return ""
    message = quote(SHM_REPLICATED).replace("%", "%%")
    return (
        "    http-request return status 200 content-type application/grpc hdr grpc-status 9 "
        f"hdr grpc-message {message} if {GRPC_SHM}\n"
    )


GRPC_SHM_REFUSAL = quote("shared memory can be registered from this host only").replace("%", "%%")
GRPC_OPEN_HEALTH = (
    "{ path " + " ".join(f"{GRPC_SERVICE}{m}" for m in ("ServerLive", "ServerReady")) + " }"
)
GRPC_OPEN = (
    "{ path "
    + " ".join(f"{GRPC_SERVICE}{method}" for method in ("ServerLive", "ServerReady"))
    + " "
    + " ".join(f"{GRPC_SERVICE}{method}" for method in GRPC_CONTROL_METHODS)
    + " }"
)


def grpc_tenant_rules(options: GatewayOptions, prefix: Path, infer: str) -> str:
    """Keys and the tenant's limits, before the body is waited for."""
    if options.key_file is None:
        return ""
    # The model is in the body: its access check follows the body's arrival (grpc_model_access).
    return auth.tenant_rules(prefix, GRPC_OPEN, infer, "grpc", check_model=False)


def grpc_model_access(options: GatewayOptions, prefix: Path) -> str:
    """The model's access check, once the gateway has read the model's name from the body."""
    return "" if options.key_file is None else auth.forbidden(prefix).grpc()


def grpc_control_rule(options: GatewayOptions) -> str:
    """Refuse model control over gRPC with PERMISSION_DENIED, or let it through with the key."""
    methods = " ".join(f"{GRPC_SERVICE}{method}" for method in GRPC_CONTROL_METHODS)
    message = quote("model control is off on this server (maas serve --control-key)")
    if options.control_key_sha256:
        message = quote("a valid maas-control-key header is needed for model control")
    message = message.replace("%", "%%")  # header values are log-format strings
    rule = (
        "    http-request return status 200 content-type application/grpc hdr grpc-status 7 "
        f"hdr grpc-message {message} if {{ path {methods} }}"
    )
    if options.control_key_sha256:
        grpc_key = key_matches(options, f"triton-grpc-protocol-{CONTROL_HEADER}")
        rule += f" !{{ {key_matches(options)} }} !{{ {grpc_key} }}\n"
        rule += (
            f"    http-request set-header triton-grpc-protocol-{CONTROL_HEADER} "
            f"{upstream_key(options)} if {{ path {methods} }}"
        )
    return rule


def upstream_key(options: GatewayOptions) -> str:
    """Triton's own control key, for requests the gateway let through."""
    if not options.upstream_control_key:
        raise ServerError("model control through the gateway needs Triton's control key")
    return options.upstream_control_key


def key_matches(options: GatewayOptions, header: str = CONTROL_HEADER) -> str:
    """An ACL that holds when a header carries the control key (compared as SHA-256)."""
    return f"req.hdr({header}),sha2(256),hex -m str -i {options.control_key_sha256}"


def metrics_frontend(options: GatewayOptions) -> str:
    """The gateway's own Prometheus metrics (per backend: queue, in flight, responses by code)."""
    return f"""frontend metrics
    bind {options.host}:{options.metrics_port}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    http-request return status 404
"""


def replica_name(index: int) -> str:
    """The gateway's name for the tritonserver at upstreams[index], in every backend."""
    return f"triton{index + 1}"


def upstream_servers(
    options: GatewayOptions, protocol: str, limits: str = "maxconn 1000", checks: bool = False
) -> str:
    """A backend's server lines, one per replica, and with several how it spreads and fails over.

    The backend with `checks` asks each replica for Triton's readiness (strict: every model
    ready) twice a second: two misses mark it down, two answers bring it back; every other
    backend follows those checks. Requests go to the replica with the fewest in flight, and are
    retried on another when one refused the connection or closed it without answering (killed
    mid-request): inference is idempotent.
    """
    lines = []
    for index, upstream in enumerate(options.upstreams):
        name = replica_name(index)
        address = f"{upstream.grpc} proto h2" if protocol == "grpc" else upstream.http
        health = ""
        if options.replicated:
            health = " check inter 500ms fall 2 rise 2" if checks else f" track http_triton/{name}"
        lines.append(f"    server {name} {address} {limits}{health}")
    if not options.replicated:
        return "\n".join(lines) + "\n"
    failover = [
        "    balance leastconn",
        "    retry-on conn-failure empty-response",
        "    retries 3",
        "    option redispatch 1",
        *(["    option httpchk GET /v2/health/ready"] if checks else []),
    ]
    return "\n".join(failover + lines) + "\n"


def upstream_backends(options: GatewayOptions) -> str:
    """Everything that is not admitted per model goes straight to Triton."""
    return f"""backend http_triton
    http-reuse always
{upstream_servers(options, "http", checks=True)}
backend grpc_triton
{upstream_servers(options, "grpc")}"""


def model_backends(options: GatewayOptions, model: str, limit: ModelLimit, prefix: Path) -> str:
    """Per protocol: the model's backend and the one its refusals are answered (and counted) in.

    The model's backend bounds requests in flight (`maxconn`), waiting (`maxqueue`) and the
    wait (`timeout queue`).
    """
    server = f"maxconn {limit.max_in_flight} maxqueue {limit.max_queue}"
    return f"""backend {refused_backend_name("http", model)}
    http-request use-service lua.maas_refuse

backend {refused_backend_name("grpc", model)}
    http-request use-service lua.maas_grpc_refuse

backend {backend_name("http", model)}
    timeout queue {limit.max_wait_ms}ms
    errorfile 503 {prefix / f"{model}.http.503"}
    http-reuse always
{upstream_servers(options, "http", server)}
backend {backend_name("grpc", model)}
    timeout queue {limit.max_wait_ms}ms
    errorfile 503 {prefix / f"{model}.grpc.503"}
{upstream_servers(options, "grpc", server)}"""


def error_json(message: str) -> str:
    """Triton's JSON error body, for a single-quoted HAProxy string (messages hold no quotes)."""
    if "'" in message or '"' in message or "\\" in message:
        raise ValueError(f"gateway messages hold no quotes or backslashes: {message!r}")
    return '{"error":"' + message + '"}'


def refusal(model: str, limit: ModelLimit) -> str:
    """What a request refused for model's limit is told."""
    return f"model '{model}' is at its limit of {limit.describe()}; retry later"


def lua_string(text: str) -> str:
    """A Lua string literal (JSON's escapes are Lua's for what refusals hold)."""
    return json.dumps(text)


def refusal_files(model: str, limit: ModelLimit) -> dict[str, bytes]:
    """The answers for a model at its limit: HTTP 503 in Triton's JSON form, gRPC UNAVAILABLE."""
    message = refusal(model, limit)
    body = json.dumps({"error": message}).encode()
    http = (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\nretry-after: 1\r\n\r\n".encode()
        + body
    )
    grpc = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ngrpc-status: 14\r\n"
        + f"grpc-message: {quote(message)}\r\ncontent-length: 0\r\n\r\n".encode()
    )
    return {f"{model}.http.503": http, f"{model}.grpc.503": grpc}


def render_settings(options: GatewayOptions) -> str:
    """maas_gateway_settings.lua: what the Lua checks and routing need to know."""
    backends = " ".join(
        f'["{model}"] = {{ queue = {limit.max_queue}, '
        f"message = {lua_string(refusal(model, limit))}, "
        f"grpc_message = {lua_string(quote(refusal(model, limit)))} }},"
        for model, limit in options.limits.items()
    )
    upstreams = " ".join(f'"{upstream.http}",' for upstream in options.upstreams)
    return (
        "-- Written by maas at every start.\nreturn {\n"
        f"  upstreams_http = {{ {upstreams} }},\n"
        f"  max_body_bytes = {options.max_body_bytes},\n"
        f"  max_json_bytes = {options.max_json_bytes},\n"
        f"  max_other_body_bytes = {MAX_OTHER_BODY_BYTES},\n"
        f"  backends = {{ {backends} }},\n"
        f"  count_items = {'true' if options.audit_socket else 'false'},\n"
        "  config_ttl_s = 5,\n"
        "  config_timeout_ms = 5000,\n"
        "}\n"
    )
