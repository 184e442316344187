"""Kubernetes deployment: manifests rendered from typed options, and the pods' preparation step.

The pods run the same command lines as local replicas (`triton_arguments`, `maas front`), so a
cluster serves what `maas serve` serves; `maas deploy render` writes the Kustomize layout.
"""

from __future__ import annotations

from .layout import manifests, render, write
from .options import DeployOptions, ModelSource, Ports, Resources
from .prepare import prepare_serving_repository

__all__ = [
    "DeployOptions",
    "ModelSource",
    "Ports",
    "Resources",
    "manifests",
    "prepare_serving_repository",
    "render",
    "write",
]
