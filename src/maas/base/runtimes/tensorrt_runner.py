"""TensorRT engines on an NVIDIA GPU.

UNVERIFIED: no GPU and no TensorRT were available where maas was developed and tested. This
code follows TensorRT 10's Python API; it is skipped, with a clear message, where `tensorrt`
does not import or no CUDA device exists.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from maas.base.errors import RuntimeUnavailableError

from . import Arrays, RuntimeOptions

SIDECAR_SUFFIX = ".json"  # model.plan.json: what the plan was built with


def require_tensorrt() -> tuple[Any, Any]:
    """The tensorrt and torch modules, or RuntimeUnavailableError saying what is missing."""
    try:
        tensorrt = importlib.import_module("tensorrt")
    except ImportError:
        raise RuntimeUnavailableError(
            "TensorRT is not installed (pip install tensorrt, on a machine with an NVIDIA GPU)"
        ) from None
    torch = importlib.import_module("torch")
    if not torch.cuda.is_available():
        raise RuntimeUnavailableError("TensorRT needs an NVIDIA GPU; torch sees no CUDA device")
    return tensorrt, torch


def build_environment(tensorrt: Any, torch: Any) -> dict[str, str]:
    """What a plan depends on: TensorRT and CUDA versions, GPU model and compute capability."""
    major, minor = torch.cuda.get_device_capability()
    return {
        "tensorrt": str(tensorrt.__version__),
        "cuda": str(torch.version.cuda),
        "gpu": str(torch.cuda.get_device_name()),
        "compute_capability": f"{major}.{minor}",
    }


def check_environment(plan: Path, current: dict[str, str]) -> None:
    """Refuse a plan built elsewhere: TensorRT plans only run where they were built."""
    sidecar = plan.with_name(plan.name + SIDECAR_SUFFIX)
    if not sidecar.is_file():
        raise RuntimeUnavailableError(f"{sidecar} is missing; rebuild the plan with maas export")
    recorded = json.loads(sidecar.read_text())
    mismatched = [
        f"{key}: plan {recorded.get(key)!r}, here {value!r}"
        for key, value in current.items()
        if recorded.get(key) != value
    ]
    if mismatched:
        raise RuntimeUnavailableError(
            f"{plan} was built for another environment ({'; '.join(mismatched)}); re-export it here"
        )


class TensorRtRunner:
    """A deserialised engine with torch-allocated device buffers."""

    def __init__(self, plan: Path, options: RuntimeOptions) -> None:
        tensorrt, self.torch = require_tensorrt()
        self.environment = build_environment(tensorrt, self.torch)
        check_environment(plan, self.environment)
        runtime = tensorrt.Runtime(tensorrt.Logger(tensorrt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(plan.read_bytes())
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = [self.engine.get_tensor_mode(n) == tensorrt.TensorIOMode.INPUT for n in names]
        self.inputs = [n for n, flag in zip(names, is_input, strict=True) if flag]
        self.outputs = [n for n, flag in zip(names, is_input, strict=True) if not flag]
        self.precision = options.precision

    def infer(self, inputs: Arrays) -> Arrays:
        """Copy inputs to the GPU, run the engine on the current stream, copy outputs back."""
        torch = self.torch
        device = {
            name: torch.from_numpy(np.ascontiguousarray(inputs[name])).cuda()
            for name in self.inputs
        }
        for name, tensor in device.items():
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        results = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            results[name] = torch.empty(shape, dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(name, results[name].data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeUnavailableError("TensorRT execution failed")
        stream.synchronize()
        return {name: tensor.cpu().numpy() for name, tensor in results.items()}

    def describe(self) -> dict[str, str]:
        """Runtime, precision and the build environment."""
        return {"runtime": "tensorrt", "precision": self.precision, **self.environment}


def load(artifact: Path, options: RuntimeOptions) -> TensorRtRunner:
    """Deserialise a plan after checking it was built for this GPU and TensorRT."""
    return TensorRtRunner(artifact, options)
