"""The Kustomize layout `maas deploy render` writes: one folder per part, each a kustomization.

base/        serving Deployment (init: prepare; Triton; gateway), Services, PodDisruptionBudget
monitoring/  ServiceMonitor, PrometheusRule, Grafana dashboard, prometheus-adapter rules, HPA
kserve/      the alternative: ServingRuntime and InferenceService (apply instead of base/)
locust/      Locust master, workers, Service and locustfile
kustomization.yaml  base + monitoring + locust, the Deployment's replicas left to the HPA
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from maas.base.errors import DeployError

from .autoscaling import autoscaling_files
from .kserve import kserve_files
from .load_test import locust_files
from .manifests import HEADER, Manifest, file_text, to_yaml
from .monitoring import monitoring_files
from .options import DeployOptions
from .workload import base_files

KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"
KUSTOMIZATION = "kustomization.yaml"
Part = Callable[[DeployOptions], dict[str, list[Manifest]]]


def monitoring_and_autoscaling(options: DeployOptions) -> dict[str, list[Manifest]]:
    """monitoring/: scraping, rules, dashboard, and the autoscaler that reads the same metrics."""
    return monitoring_files(options) | autoscaling_files(options)


PARTS: dict[str, Part] = {
    "base": base_files,
    "monitoring": monitoring_and_autoscaling,
    "kserve": kserve_files,
    "locust": locust_files,
}
COMBINED = ("base", "monitoring", "locust")  # what the top-level kustomization applies


def kustomization(resources: list[str], **extra: Any) -> str:
    """A kustomization.yaml listing its resources."""
    document = {"apiVersion": KUSTOMIZE_API, "kind": "Kustomization", "resources": resources}
    return HEADER + to_yaml(document | extra)


def replicas_left_to_the_hpa(options: DeployOptions) -> list[dict[str, Any]]:
    """A patch dropping the Deployment's replicas, so that `kubectl apply` never resets them."""
    target = {"group": "apps", "version": "v1", "kind": "Deployment", "name": options.name}
    return [{"target": target, "patch": "- op: remove\n  path: /spec/replicas\n"}]


def manifests(options: DeployOptions) -> dict[str, list[Manifest]]:
    """Relative path → the objects of that file, for every part."""
    return {
        f"{part}/{file}": documents
        for part, render in PARTS.items()
        for file, documents in render(options).items()
    }


def render(options: DeployOptions) -> dict[str, str]:
    """Relative path → text of every file in the layout."""
    files: dict[str, str] = {}
    for part, render_part in PARTS.items():
        documents = render_part(options)
        files |= {f"{part}/{name}": file_text(found) for name, found in documents.items()}
        files[f"{part}/{KUSTOMIZATION}"] = kustomization(sorted(documents))
    files[KUSTOMIZATION] = kustomization(list(COMBINED), patches=replicas_left_to_the_hpa(options))
    return dict(sorted(files.items()))


def write(options: DeployOptions, folder: Path) -> list[Path]:
    """Write the layout under folder; the paths written."""
    written = []
    try:
        for relative, text in render(options).items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
    except OSError as error:
        raise DeployError(f"cannot write the manifests under {folder}: {error}") from error
    return written
