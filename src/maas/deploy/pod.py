"""The serving pod: init containers that prepare the repository, Triton, and the gateway.

Triton's command line is `triton_arguments`, the function local replicas run, and the
gateway's is `maas front`'s; neither is written twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maas.serve.embedded import ServerOptions, TritonPaths, triton_arguments

from .options import (
    CONTROL_KEY_ENV,
    SERVING_DIR,
    SOURCE_DIR,
    TRITON_BACKENDS,
    TRITON_CACHES,
    DeployOptions,
    ModelSource,
)

LOOPBACK = "127.0.0.1"
# Images that copy an object-store folder into the pod, by URL scheme (tag pinned).
FETCHERS = {
    "s3": ("amazon/aws-cli:2.22.35", ["aws", "s3", "sync", "--only-show-errors"]),
    "gs": ("gcr.io/google.com/cloudsdktool/google-cloud-cli:502.0.0-slim",
           ["gcloud", "storage", "rsync", "--recursive"]),
}  # fmt: skip
PRESTOP_S = 10  # endpoints drop a terminating pod before its containers get SIGTERM
STARTUP_BUDGET_S = 600  # models may load for this long before the pod counts as failed
PROBE_PERIOD_S = 10


def triton_paths() -> TritonPaths:
    """The serving repository the init container writes, NVIDIA's backends and caches."""
    return TritonPaths(SERVING_DIR, TRITON_BACKENDS, TRITON_CACHES)


def triton_server_options(options: DeployOptions) -> ServerOptions:
    """Triton in a pod: HTTP and gRPC on loopback behind the gateway, metrics on the pod IP."""
    ports = options.ports
    return ServerOptions(
        repository=SOURCE_DIR,
        http_port=ports.triton_http,
        grpc_port=ports.triton_grpc,
        metrics_port=ports.triton_metrics,
        host="0.0.0.0",
        http_host=LOOPBACK,
        grpc_host=LOOPBACK,
        exit_timeout_s=options.exit_timeout_s,
        padding_strategy=options.padding_strategy,
    )


def control_key_reference() -> str:
    """The control key as Kubernetes expands it in args, from the container's environment."""
    return f"$({CONTROL_KEY_ENV})"


def triton_args(options: DeployOptions) -> list[str]:
    """The flags of tritonserver in the serving pod."""
    return triton_arguments(triton_paths(), triton_server_options(options), control_key_reference())


def gateway_arguments(options: DeployOptions) -> list[str]:
    """`maas front`'s arguments: public ports on every address, Triton's on loopback."""
    ports = options.ports
    argv = [
        f"--upstream={LOOPBACK}:{ports.triton_http}",
        f"--upstream-grpc={LOOPBACK}:{ports.triton_grpc}",
        "--host=0.0.0.0",
        f"--port={ports.http}",
        f"--grpc-port={ports.grpc}",
        f"--metrics-port={ports.gateway_metrics}",
        f"--max-body-mb={options.max_body_mb:g}",
        f"--max-wait-ms={options.max_wait_ms}",
    ]
    return argv + [f"--limit={limit}" for limit in options.limits]


def prepare_arguments(options: DeployOptions) -> list[str]:
    """`maas deploy prepare`'s arguments: canonical repository in, serving repository out."""
    return [
        f"--repository={SOURCE_DIR}",
        f"--out={SERVING_DIR}",
        f"--padding={options.padding_strategy}",
        "--replace",  # a restarted pod prepares again into the same emptyDir
    ]


def control_key_env(name: str) -> dict[str, Any]:
    """MAAS_CONTROL_KEY from the Secret `<name>-control` (required: no key, no pod)."""
    secret = {"name": f"{name}-control", "key": "control-key"}
    return {"name": CONTROL_KEY_ENV, "valueFrom": {"secretKeyRef": secret}}


def mount(volume: str, path: Path, read_only: bool = False) -> dict[str, Any]:
    """A volumeMount."""
    found: dict[str, Any] = {"name": volume, "mountPath": str(path)}
    if read_only:
        found["readOnly"] = True
    return found


def source_volume(source: ModelSource) -> dict[str, Any]:
    """The canonical repository: the claim read-only, or an emptyDir the fetcher fills."""
    if source.claim:
        claim = {"claimName": source.claim, "readOnly": True}
        return {"name": "source", "persistentVolumeClaim": claim}
    return {"name": "source", "emptyDir": {}}


def fetch_container(options: DeployOptions) -> dict[str, Any]:
    """An init container copying the repository from object storage into the source volume."""
    source = options.source
    image, command = FETCHERS[source.scheme]
    if source.endpoint:
        command = [*command, f"--endpoint-url={source.endpoint}"]
    credentials = {"secretRef": {"name": f"{options.name}-storage", "optional": True}}
    return {
        "name": "fetch-models",
        "image": image,
        "command": [*command, source.url, str(SOURCE_DIR)],
        "envFrom": [credentials],
        "volumeMounts": [mount("source", SOURCE_DIR)],
    }


def fetch_containers(options: DeployOptions) -> list[dict[str, Any]]:
    """The fetcher when the repository comes from a URL; none for a claim."""
    return [fetch_container(options)] if options.source.url else []


def prepare_container(options: DeployOptions) -> dict[str, Any]:
    """The init container that builds the serving repository (`maas deploy prepare`)."""
    return {
        "name": "prepare-models",
        "image": options.image,
        "command": ["maas", "deploy", "prepare"],
        "args": prepare_arguments(options),
        "volumeMounts": [
            mount("source", SOURCE_DIR, read_only=True),
            mount("models", SERVING_DIR),
        ],
    }


def exec_health(port: int, path: str) -> dict[str, Any]:
    """A probe that GETs a loopback endpoint from inside the container (Python is there)."""
    url = f"http://{LOOPBACK}:{port}{path}"
    code = f"import urllib.request; urllib.request.urlopen('{url}', timeout=3)"
    return {"exec": {"command": ["python3", "-c", code]}, "timeoutSeconds": 5}


def triton_probes(options: DeployOptions) -> dict[str, Any]:
    """Startup and liveness on /v2/health/live, readiness on /v2/health/ready (all loaded)."""
    port = options.ports.triton_http
    live, ready = exec_health(port, "/v2/health/live"), exec_health(port, "/v2/health/ready")
    return {
        "startupProbe": live | {
            "periodSeconds": PROBE_PERIOD_S,
            "failureThreshold": STARTUP_BUDGET_S // PROBE_PERIOD_S,
        },
        "livenessProbe": live | {"periodSeconds": PROBE_PERIOD_S, "failureThreshold": 3},
        "readinessProbe": ready | {"periodSeconds": 5, "failureThreshold": 2},
    }  # fmt: skip


def pre_stop() -> dict[str, Any]:
    """Wait before SIGTERM, so that no new request arrives at a stopping container."""
    return {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_S)]}}}


def container_port(name: str, port: int) -> dict[str, Any]:
    """A named TCP port."""
    return {"name": name, "containerPort": port, "protocol": "TCP"}


def triton_container(options: DeployOptions) -> dict[str, Any]:
    """Triton from NVIDIA's image (maas inside for the Python-backend models)."""
    return {
        "name": "triton",
        "image": options.triton_image,
        "command": ["tritonserver"],
        "args": triton_args(options),
        "env": [control_key_env(options.name)],
        "ports": [container_port("triton-metrics", options.ports.triton_metrics)],
        "resources": options.triton.spec(options.gpu),
        **triton_probes(options),
        "lifecycle": pre_stop(),
        "volumeMounts": [
            mount("source", SOURCE_DIR, read_only=True),  # the serving repository links here
            mount("models", SERVING_DIR, read_only=True),
            mount("dshm", Path("/dev/shm")),
        ],
    }


def gateway_container(options: DeployOptions) -> dict[str, Any]:
    """The gateway sidecar: the pod's only public ports, `maas front` on Triton's loopback."""
    ports = options.ports
    health = {"path": "/v2/health/ready", "port": "http"}  # through the gateway to Triton
    return {
        "name": "gateway",
        "image": options.image,
        "command": ["maas", "front"],
        "args": gateway_arguments(options),
        "ports": [
            container_port("http", ports.http),
            container_port("grpc", ports.grpc),
            container_port("gateway-metrics", ports.gateway_metrics),
        ],
        "resources": options.gateway.spec(),
        "readinessProbe": {"httpGet": health, "periodSeconds": 5, "failureThreshold": 2},
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": PROBE_PERIOD_S},
        "lifecycle": pre_stop(),
    }


def volumes(options: DeployOptions) -> list[dict[str, Any]]:
    """Source, serving repository and shared memory."""
    return [
        source_volume(options.source),
        {"name": "models", "emptyDir": {}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": options.shm_size}},
    ]


def pod_spec(options: DeployOptions) -> dict[str, Any]:
    """The serving pod."""
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": PRESTOP_S + options.exit_timeout_s + 10,
        "initContainers": [*fetch_containers(options), prepare_container(options)],
        "containers": [triton_container(options), gateway_container(options)],
        "volumes": volumes(options),
    }
    if options.gpu:
        spec["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    return spec
