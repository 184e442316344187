"""Python-backend stub processes of a running server and their shared-memory regions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STUB_NAME = "triton_python_backend_stub"
SHM_DIR = Path("/dev/shm")
REGION_PREFIX = "triton_python_backend_shm_region_"  # the Python backend's region per stub


@dataclass(frozen=True)
class Stub:
    """A Python backend stub process: one per instance of a Python model."""

    pid: int
    model: str
    region: str  # its shared-memory region's name in SHM_DIR


def stub_of(command: list[str], serving: Path) -> tuple[str, str] | None:
    """(model, region) of a stub's command line, or None if it is not one of serving's stubs.

    The command line is `stub <serving>/<model>/<version>/model.py <region> …`.
    """
    if len(command) < 3 or not command[0].endswith(STUB_NAME):
        return None
    model_file = Path(command[1])
    if not model_file.is_relative_to(serving) or not command[2].startswith(REGION_PREFIX):
        return None
    return model_file.relative_to(serving).parts[0], command[2]


def remove_regions(names: set[str]) -> list[str]:
    """Unlink the named Python-backend regions still in SHM_DIR; the names removed."""
    removed = []
    for name in sorted(names):
        if not name.startswith(REGION_PREFIX) or "/" in name:
            continue
        try:
            (SHM_DIR / name).unlink()
        except FileNotFoundError:
            continue
        removed.append(name)
    return removed
