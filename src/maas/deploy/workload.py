"""base/: the serving Deployment, its Services and its PodDisruptionBudget."""

from __future__ import annotations

from typing import Any

from .manifests import Manifest, manifest, metadata
from .options import DeployOptions
from .pod import pod_spec

SERVING = "serving"


def deployment(options: DeployOptions) -> Manifest:
    """Triton pods behind their gateways; one pod replaced at a time, never below replicas."""
    labels = options.labels(SERVING)
    spec = {
        "replicas": options.replicas,
        "selector": {"matchLabels": labels},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": {"metadata": {"labels": labels}, "spec": pod_spec(options)},
    }
    return manifest("apps/v1", "Deployment", metadata(options, options.name, SERVING), spec=spec)


def service_port(name: str, port: int, target: str, app_protocol: str = "") -> dict[str, Any]:
    """A Service port pointing at a named container port."""
    found: dict[str, Any] = {"name": name, "port": port, "targetPort": target, "protocol": "TCP"}
    if app_protocol:
        found["appProtocol"] = app_protocol
    return found


def service(options: DeployOptions, name: str, ports: list[dict[str, Any]]) -> Manifest:
    """A ClusterIP Service in front of the serving pods."""
    spec = {"type": "ClusterIP", "selector": options.labels(SERVING), "ports": ports}
    return manifest("v1", "Service", metadata(options, name, SERVING), spec=spec)


def inference_service(options: DeployOptions) -> Manifest:
    """Clients' Service: Triton's usual port numbers, answered by the gateway."""
    triton = options.ports
    return service(
        options,
        options.name,
        [
            service_port("http", triton.triton_http, "http", "http"),
            service_port("grpc", triton.triton_grpc, "grpc", "kubernetes.io/h2c"),
        ],
    )


def metrics_service(options: DeployOptions) -> Manifest:
    """Scrape targets: Triton's metrics and the gateway's, one Service port each."""
    ports = options.ports
    return service(
        options,
        f"{options.name}-metrics",
        [
            service_port("triton-metrics", ports.triton_metrics, "triton-metrics"),
            service_port("gateway-metrics", ports.gateway_metrics, "gateway-metrics"),
        ],
    )


def disruption_budget(options: DeployOptions) -> Manifest:
    """Voluntary evictions (drains, upgrades) take one serving pod at a time."""
    spec = {"maxUnavailable": 1, "selector": {"matchLabels": options.labels(SERVING)}}
    meta = metadata(options, options.name, SERVING)
    return manifest("policy/v1", "PodDisruptionBudget", meta, spec=spec)


def base_files(options: DeployOptions) -> dict[str, list[Manifest]]:
    """base/'s manifest files."""
    return {
        "deployment.yaml": [deployment(options)],
        "services.yaml": [inference_service(options), metrics_service(options)],
        "pdb.yaml": [disruption_budget(options)],
    }
