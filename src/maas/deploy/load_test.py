"""locust/: distributed Locust in the cluster, driving the serving Service with maas's users.

The ConfigMap holds maas's locustfile; it imports `maas.benchmarks.locust_users`, which the
maas image has installed. The users read input shapes from the canonical repository, so the
Locust pods mount it as the serving pods do.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from maas.base.errors import DeployError

from .manifests import Manifest, manifest, metadata
from .options import SOURCE_DIR, DeployOptions
from .pod import fetch_containers, mount, source_volume

LOCUST = "locust"
WEB_PORT, MASTER_PORT = 8089, 5557
LOCUSTFILE_DIR = Path("/mnt/locust")


def locustfile_text() -> str:
    """benchmarks/locustfile.py as installed (found without importing Locust)."""
    spec = importlib.util.find_spec("maas.benchmarks")
    if spec is None or spec.origin is None:
        raise DeployError("maas.benchmarks is not installed: no locustfile to deploy")
    return (Path(spec.origin).parent / "locustfile.py").read_text()


def user_arguments(options: DeployOptions) -> list[str]:
    """What every Locust process calls: the model, over HTTP, through the serving Service."""
    url = f"{options.name}.{options.namespace}.svc:{options.ports.triton_http}"
    return [
        f"--locustfile={LOCUSTFILE_DIR / 'locustfile.py'}",
        f"--model={options.load_model}",
        "--protocol=http",
        f"--url={url}",
        f"--repository={SOURCE_DIR}",
    ]


def locust_pod(options: DeployOptions, role_args: list[str], master: bool) -> dict[str, Any]:
    """A Locust pod: the maas image, the locustfile and the canonical repository mounted."""
    ports = [
        {"name": "web", "containerPort": WEB_PORT, "protocol": "TCP"},
        {"name": "master", "containerPort": MASTER_PORT, "protocol": "TCP"},
    ]
    container = {
        "name": LOCUST,
        "image": options.image,
        "command": ["locust"],
        "args": [*user_arguments(options), *role_args],
        "ports": ports if master else [],
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "volumeMounts": [
            mount("locustfile", LOCUSTFILE_DIR, read_only=True),
            mount("source", SOURCE_DIR, read_only=True),
        ],
    }
    locustfile = {"configMap": {"name": f"{options.name}-locustfile"}}
    pod: dict[str, Any] = (
        {"initContainers": fetch_containers(options)} if options.source.url else {}
    )
    return pod | {
        "containers": [container],
        "volumes": [{"name": "locustfile", **locustfile}, source_volume(options.source)],
    }


def locust_deployment(
    options: DeployOptions, role: str, replicas: int, role_args: list[str]
) -> Manifest:
    """The master (web UI, one replica) or the workers (scale them with kubectl)."""
    labels = options.labels(f"{LOCUST}-{role}")
    spec = {
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": locust_pod(options, role_args, role == "master"),
        },
    }
    meta = metadata(options, f"{options.name}-locust-{role}", f"{LOCUST}-{role}")
    return manifest("apps/v1", "Deployment", meta, spec=spec)


def locust_service(options: DeployOptions) -> Manifest:
    """The master's web UI and the port workers connect to."""
    ports = [
        {"name": "web", "port": WEB_PORT, "targetPort": "web", "protocol": "TCP"},
        {"name": "master", "port": MASTER_PORT, "targetPort": "master", "protocol": "TCP"},
    ]
    spec = {"type": "ClusterIP", "selector": options.labels(f"{LOCUST}-master"), "ports": ports}
    meta = metadata(options, f"{options.name}-locust", f"{LOCUST}-master")
    return manifest("v1", "Service", meta, spec=spec)


def locustfile_config_map(options: DeployOptions) -> Manifest:
    """The locustfile, mounted into every Locust pod."""
    meta = metadata(options, f"{options.name}-locustfile", LOCUST)
    return manifest("v1", "ConfigMap", meta, data={"locustfile.py": locustfile_text()})


def locust_files(options: DeployOptions) -> dict[str, list[Manifest]]:
    """locust/'s manifest files."""
    master = ["--master", f"--master-bind-port={MASTER_PORT}", f"--web-port={WEB_PORT}"]
    worker = ["--worker", f"--master-host={options.name}-locust", f"--master-port={MASTER_PORT}"]
    return {
        "configmap.yaml": [locustfile_config_map(options)],
        "master.yaml": [locust_deployment(options, "master", 1, master), locust_service(options)],
        "workers.yaml": [locust_deployment(options, "worker", 2, worker)],
    }
