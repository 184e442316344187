"""The export manifest: what was exported, from what, with which libraries, verified how."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from maas.base import machine

RECORDED_PACKAGES = (
    "maas",
    "torch",
    "onnx",
    "onnxruntime",
    "transformers",
    "scikit-learn",
    "numpy",
)
MANIFEST_FORMAT = 2


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def folder_sha256(folder: Path) -> str:
    """One digest over every file of an artifact folder (an IR is model.xml and model.bin)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(sha256_of(path).encode())
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Installed versions of the packages an export depends on."""
    return machine.library_versions(RECORDED_PACKAGES)


def load(path: Path) -> dict[str, Any]:
    """The manifest at path, or an empty one."""
    if not path.is_file():
        return {"format": MANIFEST_FORMAT, "models": {}}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def record_version(path: Path, name: str, version: int, entry: dict[str, Any]) -> None:
    """Replace one version's entry of a model and write the manifest with stable key order."""
    data = load(path)
    data.setdefault("models", {}).setdefault(name, {}).setdefault("versions", {})[str(version)] = (
        entry
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
