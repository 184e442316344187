"""The machine and software a benchmark ran on, so numbers can be compared honestly later."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import urllib.request
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

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
CPU_FEATURES = ("avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """CPU model name and the matrix/vector features that matter for inference."""
    model, flags = platform.processor() or "unknown", set[str]()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    return model, [feature for feature in CPU_FEATURES if feature in flags]


def gpus() -> list[str]:
    """NVIDIA GPUs nvidia-smi lists, or none."""
    if shutil.which("nvidia-smi") is None:
        return []
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return [line for line in listed.stdout.splitlines() if line.strip()]


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries on the measured path."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def server_version(http_url: str) -> str:
    """Triton's version from its metadata endpoint, if a server is given and answers."""
    if not http_url:
        return ""
    try:
        with urllib.request.urlopen(f"http://{http_url}/v2", timeout=5) as response:
            return str(json.load(response).get("version", ""))
    except (OSError, ValueError):
        return "unreachable"


def git_commit() -> str:
    """The commit of the working tree, where there is one."""
    found = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return found.stdout.strip() if found.returncode == 0 else ""


def fingerprint(http_url: str = "") -> dict[str, object]:
    """Everything above, with the date."""
    model, features = cpu_model_and_flags()
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model,
        "cores": os.cpu_count() or 0,
        "cpu_features": features,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "gpus": gpus() or ["none"],
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "tritonserver": server_version(http_url),
        "git_commit": git_commit(),
        "libraries": library_versions(),
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
