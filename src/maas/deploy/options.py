"""What a Kubernetes deployment of maas is made of: typed options, checked when built."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from maas import __version__
from maas.base.errors import DeployError
from maas.base.triton.parameters import PADDING_STRATEGIES
from maas.serve.gateway_config import DEFAULT_MAX_WAIT_MS

# RFC 1123 label: what Kubernetes accepts as a name of every object rendered here.
NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
QUANTITY = re.compile(r"\d+(\.\d+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?")
LIMIT = re.compile(r"[^=\s]+=\d+(:\d+){0,2}")  # `maas front --limit` MODEL=IN_FLIGHT[:Q[:W]]
FETCH_SCHEMES = ("s3", "gs")
LONGEST_NAME = 40  # the longest suffix added is "-locust-worker" (14); a label holds 63


@dataclass(frozen=True)
class ModelSource:
    """Where pods find the canonical model repository (what `maas export` wrote).

    claim: a PersistentVolumeClaim holding it, mounted read-only; or
    url: an s3:// or gs:// folder copied into the pod by an init container (credentials, if
    any, as environment variables from the optional Secret `<name>-storage`);
    endpoint: an S3-compatible store's URL (MinIO, Ceph), for s3:// only.
    """

    claim: str = "maas-models"
    url: str = ""
    endpoint: str = ""

    def __post_init__(self) -> None:
        if bool(self.claim) == bool(self.url):
            raise DeployError("the model repository needs exactly one of a claim or a URL")
        if self.claim and not NAME.fullmatch(self.claim):
            raise DeployError(f"claim {self.claim!r} is not a Kubernetes name")
        if self.url and self.scheme not in FETCH_SCHEMES:
            raise DeployError(
                f"repository URL {self.url!r}: the scheme must be one of "
                f"{', '.join(s + '://' for s in FETCH_SCHEMES)}"
            )
        if self.endpoint and self.scheme != "s3":
            raise DeployError("an object-store endpoint applies to s3:// URLs only")

    @property
    def scheme(self) -> str:
        """s3 or gs for a URL; empty for a claim."""
        return self.url.partition("://")[0] if "://" in self.url else ""


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container, as Kubernetes quantities."""

    cpu: str
    memory: str
    cpu_limit: str = ""  # empty: no CPU limit (throttling hurts latency more than it protects)
    memory_limit: str = ""  # empty: the request

    def __post_init__(self) -> None:
        for value in (self.cpu, self.memory, self.cpu_limit, self.memory_limit):
            if value and not QUANTITY.fullmatch(value):
                raise DeployError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 4, 8Gi)")

    def spec(self, gpu: int = 0) -> dict[str, dict[str, str]]:
        """The container's `resources`; GPUs as nvidia.com/gpu, requested and limited alike."""
        requests = {"cpu": self.cpu, "memory": self.memory}
        limits = {"memory": self.memory_limit or self.memory}
        if self.cpu_limit:
            limits["cpu"] = self.cpu_limit
        if gpu:
            requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(gpu)
        return {"requests": requests, "limits": limits}


@dataclass(frozen=True)
class Ports:
    """Ports inside a serving pod; Triton's HTTP and gRPC listen on loopback only."""

    http: int = 8080  # the gateway's, public
    grpc: int = 8081
    gateway_metrics: int = 8083
    triton_http: int = 8000  # Triton's own, behind the gateway
    triton_grpc: int = 8001
    triton_metrics: int = 8002  # scraped; the metrics endpoint takes no requests

    def __post_init__(self) -> None:
        ports = list(vars(self).values())
        if len(set(ports)) != len(ports) or not all(0 < port < 65536 for port in ports):
            raise DeployError(f"pod ports must be distinct and in 1-65535, got {ports}")


@dataclass(frozen=True)
class DeployOptions:
    """Everything the rendered manifests depend on; the defaults are what deploy/k8s holds."""

    name: str = "maas"
    namespace: str = "maas"
    # maas itself: the init container, the gateway sidecar and Locust (deploy/docker, target maas)
    image: str = f"maas:{__version__}"
    # NVIDIA's Triton 24.10 (2.51) with maas installed (deploy/docker, target triton)
    triton_image: str = f"maas-triton:{__version__}"
    replicas: int = 1
    min_replicas: int = 1
    max_replicas: int = 4
    gpu: int = 1  # GPUs per Triton pod; 0 serves on CPU
    triton: Resources = field(default_factory=lambda: Resources("4", "16Gi"))
    gateway: Resources = field(default_factory=lambda: Resources("1", "1Gi"))
    shm_size: str = "2Gi"  # /dev/shm: Python-backend stubs exchange tensors through it
    source: ModelSource = field(default_factory=ModelSource)
    padding_strategy: str = "buckets"
    queue_target_s: float = 0.05  # HPA target: mean queue time per request in each pod
    scale_down_window_s: int = 300  # the HPA scales down on the highest value seen this long
    exit_timeout_s: int = 30  # Triton waits this long for in-flight requests at shutdown
    max_body_mb: float = 32
    max_wait_ms: int = DEFAULT_MAX_WAIT_MS  # longest a request waits at the gateway for its model
    limits: tuple[str, ...] = ()  # `maas front --limit` values; default from model configs
    load_model: str = "resnet50_image"  # the model Locust calls
    ports: Ports = field(default_factory=Ports)

    def __post_init__(self) -> None:
        for label, value in (("name", self.name), ("namespace", self.namespace)):
            if not NAME.fullmatch(value) or len(value) > LONGEST_NAME:
                raise DeployError(
                    f"{label} {value!r} must be lowercase letters, digits and '-', at most "
                    f"{LONGEST_NAME} characters"
                )
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise DeployError(
                f"replicas must satisfy 1 <= min ({self.min_replicas}) <= max ({self.max_replicas})"
            )
        if not self.min_replicas <= self.replicas <= self.max_replicas:
            raise DeployError(f"replicas {self.replicas} is outside min-max replicas")
        self._check_numbers()
        if self.padding_strategy not in PADDING_STRATEGIES:
            raise DeployError(
                f"padding strategy must be one of {', '.join(PADDING_STRATEGIES)}, "
                f"got {self.padding_strategy!r}"
            )
        bad = [limit for limit in self.limits if not LIMIT.fullmatch(limit)]
        if bad:
            raise DeployError(f"limits must be MODEL=IN_FLIGHT[:QUEUE[:WAIT_MS]], got {bad}")

    def _check_numbers(self) -> None:
        if self.gpu < 0:
            raise DeployError(f"gpu must be 0 or more, got {self.gpu}")
        if self.queue_target_s < 0.001:
            raise DeployError(
                f"the queue-time target must be 1 ms or more, got {self.queue_target_s}"
            )
        if self.exit_timeout_s < 0 or self.scale_down_window_s < 0 or self.max_wait_ms < 1:
            raise DeployError("timeouts and windows must not be negative")
        if self.max_body_mb < 1:
            raise DeployError(f"max_body_mb must be at least 1, got {self.max_body_mb}")
        if not QUANTITY.fullmatch(self.shm_size):
            raise DeployError(f"shm size {self.shm_size!r} is not a Kubernetes quantity")

    def labels(self, component: str) -> dict[str, str]:
        """The labels that select one component's pods."""
        return {"app.kubernetes.io/name": self.name, "app.kubernetes.io/component": component}


# Inside the pods: where the canonical and serving repositories live, and the container's own
# backends and caches (NVIDIA's image). The serving repository links into the source, so both
# containers mount the source at the same path.
SOURCE_DIR = Path("/source")
SERVING_DIR = Path("/models")
TRITON_BACKENDS = Path("/opt/tritonserver/backends")
TRITON_CACHES = Path("/opt/tritonserver/caches")
CONTROL_KEY_ENV = "MAAS_CONTROL_KEY"
