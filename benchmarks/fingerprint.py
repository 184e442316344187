"""The machine and software a benchmark ran on, so numbers can be compared honestly later."""

from __future__ import annotations

import json
import os
import platform
import urllib.request
from datetime import datetime, timezone

from maas.base.machine import cpu_model_and_flags, git_commit, gpus, library_versions, memory_gib
from maas.clients.transport import auth_headers

LIBRARIES = (
    "maas",
    "tritonclient",
    "nvidia-pytriton",
    "locust",
    "gevent",
    "geventhttpclient",
    "grpcio",
    "greenlet",
    "numpy",
    "torch",
    "onnxruntime",
    "openvino",
    "fastapi",
    "uvicorn",
)


def server_version(http_url: str) -> str:
    """Triton's version from its metadata endpoint, if a server is given and answers."""
    if not http_url:
        return ""
    try:
        request = urllib.request.Request(f"http://{http_url}/v2", headers=auth_headers())
        with urllib.request.urlopen(request, timeout=5) as response:
            return str(json.load(response).get("version", ""))
    except (OSError, ValueError):
        return "unreachable"


def fingerprint(http_url: str = "") -> dict[str, object]:
    """Everything above, with the date."""
    model, features = cpu_model_and_flags()
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model,
        "cores": os.cpu_count() or 0,
        "cpu_features": features,
        "memory_gib": memory_gib(),
        "gpus": gpus() or ["none"],
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "tritonserver": server_version(http_url),
        "git_commit": git_commit(),
        "libraries": library_versions(LIBRARIES),
    }


def render(print_: dict[str, object]) -> str:
    """A Markdown section."""
    libraries = print_.get("libraries", {})
    assert isinstance(libraries, dict)
    lines = ["## Machine", ""]
    for key in ("date", "cpu", "cores", "memory_gib", "os", "python", "tritonserver", "git_commit"):
        lines.append(f"- {key.replace('_', ' ')}: {print_.get(key)}")
    features = print_.get("cpu_features")
    lines.append(f"- CPU features: {', '.join(features) if isinstance(features, list) else ''}")
    gpu_list = print_.get("gpus")
    lines.append(f"- GPUs: {', '.join(gpu_list) if isinstance(gpu_list, list) else ''}")
    lines.append("- libraries: " + ", ".join(f"{k} {v}" for k, v in libraries.items()))
    return "\n".join(lines)
