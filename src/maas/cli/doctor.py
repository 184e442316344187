"""What this machine can serve and run: the server binary, runtimes, CPU features, GPUs."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata

from maas.base.errors import ServerDependencyError
from maas.base.machine import cpu_model_and_flags


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str


def package_check(label: str, distribution: str) -> Check:
    """Whether a Python distribution is installed, and its version."""
    try:
        return Check(label, True, metadata.version(distribution))
    except metadata.PackageNotFoundError:
        return Check(label, False, f"not installed (pip install {distribution})")


def server_check() -> Check:
    """The embedded tritonserver, its stub for this Python and the libraries it links."""
    from maas.serve.distribution import TritonDistribution

    try:
        found = TritonDistribution.locate()
    except ServerDependencyError as error:
        return Check("embedded tritonserver", False, str(error))
    return Check(
        "embedded tritonserver",
        True,
        f"{found.binary} (Python backend; stub {found.stub.parent.name})",
    )


def gateway_check() -> Check:
    """The gateway's HAProxy, and its version line."""
    from maas.serve.gateway import HAProxy

    try:
        found = HAProxy.locate()
    except ServerDependencyError as error:
        return Check("gateway (HAProxy)", False, str(error))
    version = subprocess.run(
        [str(found.binary), "-v"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return Check("gateway (HAProxy)", bool(version), f"{found.binary} ({(version or ['?'])[0]})")


def cpu_check() -> Check:
    """Matrix and vector features of the CPU, as the kernel reports them."""
    model, present = cpu_model_and_flags()
    return Check("CPU", True, f"{model}; {', '.join(present) or 'no AVX-512/AMX'}")


def openvino_check() -> Check:
    """OpenVINO and the devices it sees."""
    try:
        import openvino
    except ImportError:
        return Check("openvino", False, "not installed (pip install openvino)")
    devices = openvino.Core().available_devices
    return Check("openvino", True, f"{openvino.__version__}; devices {', '.join(devices)}")


def gpu_check() -> Check:
    """An NVIDIA GPU, through nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return Check("NVIDIA GPU", False, "none (no nvidia-smi)")
    result = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
    )
    return Check(
        "NVIDIA GPU", result.returncode == 0, result.stdout.strip() or result.stderr.strip()
    )


def tensorrt_check() -> Check:
    """TensorRT's Python package."""
    try:
        module = importlib.import_module("tensorrt")
    except ImportError:
        return Check(
            "tensorrt",
            False,
            "not importable: the tensorrt target is skipped (needs NVIDIA GPU + TensorRT)",
        )
    return Check("tensorrt", True, str(getattr(module, "__version__", "unknown version")))


def targets_check() -> Check:
    """Which export targets can be built here."""
    from maas.export.targets import TARGETS

    usable = [name for name, target in TARGETS.items() if target.unavailable() is None]
    skipped = [name for name, target in TARGETS.items() if target.unavailable() is not None]
    detail = ", ".join(usable) + (f" (skipped here: {', '.join(skipped)})" if skipped else "")
    return Check("export targets", bool(usable), detail)


def run_checks() -> list[Check]:
    """Every check, in report order."""
    return [
        server_check(),
        gateway_check(),
        package_check("tritonclient", "tritonclient"),
        package_check("torch", "torch"),
        package_check("onnx", "onnx"),
        package_check("onnxruntime", "onnxruntime"),
        openvino_check(),
        cpu_check(),
        gpu_check(),
        tensorrt_check(),
        targets_check(),
    ]
