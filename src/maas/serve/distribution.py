"""The tritonserver of the nvidia-pytriton wheel: where its files are, and whether they run."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from maas.base.errors import ServerDependencyError

from .stubs import STUB_NAME

PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class TritonDistribution:
    """Where the files of the tritonserver shipped in the nvidia-pytriton wheel are."""

    binary: Path
    python_backend: Path  # backends/python: libtriton_python.so and its utils
    stub: Path  # the Python backend stub built for this interpreter's version
    libraries: Path  # the wheel's bundled shared libraries

    @classmethod
    def locate(cls) -> TritonDistribution:
        """Find the distribution or say what to install."""
        spec = importlib.util.find_spec("pytriton")
        if spec is None or not spec.submodule_search_locations:
            raise ServerDependencyError(
                "the embedded server needs the nvidia-pytriton wheel: "
                "pip install nvidia-pytriton==0.7.0"
            )
        package = Path(next(iter(spec.submodule_search_locations)))
        dist = package / "tritonserver"
        found = cls(
            binary=dist / "bin" / "tritonserver",
            python_backend=dist / "backends" / "python",
            stub=dist / "python_backend_stubs" / PYTHON_VERSION / STUB_NAME,
            libraries=package.parent / "nvidia_pytriton.libs",
        )
        found.check()
        return found

    def check(self) -> None:
        """Every file is there and the stub's shared libraries resolve."""
        if not self.binary.is_file():
            raise ServerDependencyError(f"{self.binary} is missing; reinstall nvidia-pytriton")
        if not self.stub.is_file():
            raise ServerDependencyError(
                f"nvidia-pytriton ships no Python backend stub for Python {PYTHON_VERSION} "
                f"({self.stub}); use Python 3.8-3.13"
            )
        missing = missing_libraries(self.stub, self.libraries)
        if missing:
            hint = (
                f" (apt-get install libpython{PYTHON_VERSION})"
                if any("python" in m for m in missing)
                else ""
            )
            raise ServerDependencyError(
                f"the Python backend stub cannot load {', '.join(missing)}{hint}"
            )


def missing_libraries(binary: Path, extra_path: Path) -> list[str]:
    """Shared libraries the dynamic linker cannot find for binary, as ldd reports them."""
    if shutil.which("ldd") is None:
        return []  # cannot tell; the server's own start-up error will say
    env = {**os.environ, "LD_LIBRARY_PATH": library_path(extra_path)}
    listing = subprocess.run(
        ["ldd", str(binary)], capture_output=True, text=True, env=env, check=False
    )
    return [line.split()[0] for line in listing.stdout.splitlines() if "not found" in line]


def library_path(libraries: Path) -> str:
    """LD_LIBRARY_PATH with the wheel's libraries first."""
    current = os.environ.get("LD_LIBRARY_PATH", "")
    return f"{libraries}:{current}" if current else str(libraries)
