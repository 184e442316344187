"""Runtimes behind one interface: load an artifact, run named inputs, describe yourself.

Export verification, the serving adapters and the benchmarks all go through these runners,
so comparing ONNX Runtime, OpenVINO, TensorRT and torch on a GPU needs no runtime-specific
code elsewhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from maas.base.errors import RuntimeUnavailableError

Arrays = dict[str, np.ndarray]


class Runner(Protocol):
    """A loaded artifact."""

    def infer(self, inputs: Arrays) -> Arrays:
        """Run one batch of named inputs; return named outputs."""
        ...

    def describe(self) -> dict[str, str]:
        """Runtime, version, precision and device, for manifests and reports."""
        ...


@dataclass(frozen=True)
class RuntimeOptions:
    """How to load an artifact."""

    precision: str = "fp32"  # fp32 | bf16 | fp16 | int8: the precision the runtime computes in
    threads: int = 0  # 0: the runtime's default (all cores)
    device: str = ""  # "": the runtime's own (CPU; CUDA for torch); "cuda:1" picks a GPU
    # Batch sizes a GPU runtime captures CUDA graphs for (batch 1 and the preferred sizes).
    graph_batches: tuple[int, ...] = ()


Loader = Callable[[Path, RuntimeOptions], Runner]
_LOADERS = {
    "onnxruntime": "maas.base.runtimes.onnxruntime_runner",
    "openvino": "maas.base.runtimes.openvino_runner",
    "tensorrt": "maas.base.runtimes.tensorrt_runner",
    "torch": "maas.base.runtimes.torch_runner",
}


def runtimes() -> list[str]:
    """Names of every runtime maas knows."""
    return sorted(_LOADERS)


def load_runner(runtime: str, artifact: Path, options: RuntimeOptions | None = None) -> Runner:
    """Load artifact with runtime; RuntimeUnavailableError if it cannot run here."""
    if runtime not in _LOADERS:
        raise RuntimeUnavailableError(
            f"unknown runtime {runtime!r}; known: {', '.join(runtimes())}"
        )
    if not artifact.is_file():
        raise RuntimeUnavailableError(f"{artifact} does not exist")
    module = importlib.import_module(_LOADERS[runtime])
    load: Loader = module.load
    return load(artifact, options or RuntimeOptions())
