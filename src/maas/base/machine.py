"""Facts about this machine and its software, for doctor, benchmark fingerprints and manifests.

One place reads /proc/cpuinfo, asks nvidia-smi and looks up installed versions.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

# The matrix/vector features that decide which CPU paths are fast (bf16 and int8 on AMX).
CPU_FEATURES = ("avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """CPU model name and which of CPU_FEATURES it has."""
    model, flags = "", set[str]()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    present = [feature for feature in CPU_FEATURES if feature in flags]
    return model or platform.processor() or "unknown", present


def gpus() -> list[str]:
    """NVIDIA GPUs as `nvidia-smi -L` lists them, or none."""
    if shutil.which("nvidia-smi") is None:
        return []
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return [line for line in listed.stdout.splitlines() if line.strip()]


def memory_gib() -> float:
    """Physical memory, GiB, one decimal."""
    return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)


def library_versions(packages: Iterable[str]) -> dict[str, str]:
    """Installed version of each distribution, or 'not installed'."""
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str:
    """The commit of the working tree, where there is one, marked if tracked files changed.

    A report measured on uncommitted code must not name a commit that lacks that code.
    """
    found = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        return ""
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = changed.returncode == 0 and changed.stdout.strip()
    return found.stdout.strip() + (" + uncommitted changes" if dirty else "")
