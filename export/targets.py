"""Export targets: what artifact each runtime and precision needs, and how to build it from ONNX.

A registry, so the exporter, serving and benchmarks treat every target alike. GPU targets
(TensorRT, torch on CUDA) are built only where their runtime imports and a CUDA device exists;
elsewhere they are skipped with a reason, and their models get GPU instances in Triton.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maas.base.errors import ExportError, RuntimeUnavailableError

from . import openvino_ir
from .spec import Inputs, ModelSpec

CALIBRATION_SAMPLES = 300
TIMING_CACHE = Path.home() / ".cache" / "maas" / "tensorrt-timing.cache"


@dataclass(frozen=True)
class BuildContext:
    """What a target builder gets: the verified fp32 ONNX file and real calibration data."""

    spec: ModelSpec
    onnx: Path
    folder: Path  # where the artifact files go
    calibration: Inputs
    module: Any = None  # the source torch module, for targets that run torch itself


Builder = Callable[[BuildContext], None]


@dataclass(frozen=True)
class Target:
    """One runtime at one precision."""

    name: str
    runtime: str
    precision: str
    artifact: str  # the file Triton and the runner load; companions (model.bin) sit beside it
    backend: str  # Triton backend in the NGC container
    platform: str
    build: Builder
    parameters: dict[str, str] = field(default_factory=dict)  # config.pbtxt parameters
    gpu: bool = False  # Triton runs its instances on GPUs (KIND_GPU)

    @property
    def reduced_precision(self) -> bool:
        """Whether accuracy gates, not fp32 tolerances, decide if the artifact is good enough."""
        return self.precision != "fp32"

    def unavailable(self) -> str | None:
        """Why this target cannot be built here, or None."""
        if not self.gpu:
            return None
        if self.runtime == "tensorrt" and importlib.util.find_spec("tensorrt") is None:
            return "TensorRT is not installed (needs an NVIDIA GPU and the tensorrt package)"
        import torch

        return None if torch.cuda.is_available() else f"no CUDA device for {self.name}"


def copy_onnx(context: BuildContext) -> None:
    """fp32 ONNX as verified."""
    shutil.copyfile(context.onnx, context.folder / "model.onnx")


def quantize_onnx_dynamic(context: BuildContext) -> None:
    """int8 weights for MatMul/Gemm with dynamically quantised activations (ONNX Runtime)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        context.onnx,
        context.folder / "model.onnx",
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"],  # ConvInteger is slower than fp32 Conv on CPU
    )


def convert_openvino(context: BuildContext) -> None:
    """OpenVINO IR in fp32; the precision (f32 or bf16) is chosen when it is compiled.

    The fp32 and bf16 targets load the same IR: it is converted once per export, beside the
    ONNX file, and copied (a conversion is a subprocess of seconds).
    """
    converted = context.onnx.parent / "openvino-ir"
    if not (converted / "model.xml").is_file():
        converted.mkdir(exist_ok=True)
        openvino_ir.run("convert", str(context.onnx), str(converted / "model.xml"))
    for part in converted.iterdir():
        shutil.copyfile(part, context.folder / part.name)


def quantize_openvino(context: BuildContext) -> None:
    """int8 IR by NNCF post-training quantisation, calibrated on the spec's real inputs."""
    samples = openvino_ir.save_samples(
        calibration_items(context.calibration), context.folder.parent / f"{context.folder.name}.npz"
    )
    kind = [] if context.spec.task == "image-classification" else ["--transformer"]
    xml = context.folder / "model.xml"
    openvino_ir.run("quantize", str(context.onnx), str(xml), "--samples", str(samples), *kind)


def calibration_items(inputs: Inputs) -> list[dict[str, np.ndarray]]:
    """One batch-of-one item per sample, at most CALIBRATION_SAMPLES."""
    count = min(len(next(iter(inputs.values()))), CALIBRATION_SAMPLES)
    return [{name: array[i : i + 1] for name, array in inputs.items()} for i in range(count)]


def tensorrt_builder(precision: str) -> Builder:
    """A TensorRT engine builder for precision (fp16 or int8)."""

    def build(context: BuildContext) -> None:
        from .tensorrt_build import build_plan

        try:
            build_plan(context, precision, TIMING_CACHE)
        except ImportError as error:
            raise RuntimeUnavailableError(f"TensorRT build needs {error.name}") from error

    return build


def torch_program_builder(precision: str) -> Builder:
    """A builder of the source module as a torch.export program computing in precision."""

    def build(context: BuildContext) -> None:
        from .torch_program import save_program

        if context.module is None:
            raise ExportError(f"{context.spec.name}: the torch target needs the source module")
        save_program(context.spec, context.module, context.calibration, context.folder, precision)

    return build


ONNX_PLATFORM = "onnxruntime_onnx"
TRT_PLATFORM = "tensorrt_plan"
OV_F32 = {"INFERENCE_PRECISION_HINT": "f32"}
OV_BF16 = {"INFERENCE_PRECISION_HINT": "bf16"}  # int8 IRs run their non-int8 ops in bf16 too
_ALL = (
    Target(
        "onnxruntime-fp32",
        "onnxruntime",
        "fp32",
        "model.onnx",
        "onnxruntime",
        ONNX_PLATFORM,
        copy_onnx,
    ),
    Target(
        "onnxruntime-int8",
        "onnxruntime",
        "int8",
        "model.onnx",
        "onnxruntime",
        ONNX_PLATFORM,
        quantize_onnx_dynamic,
    ),
    Target(
        "openvino-fp32", "openvino", "fp32", "model.xml", "openvino", "", convert_openvino, OV_F32
    ),
    Target(
        "openvino-bf16", "openvino", "bf16", "model.xml", "openvino", "", convert_openvino, OV_BF16
    ),
    Target(
        "openvino-int8", "openvino", "int8", "model.xml", "openvino", "", quantize_openvino, OV_BF16
    ),
    Target(
        "tensorrt-fp16",
        "tensorrt",
        "fp16",
        "model.plan",
        "tensorrt",
        TRT_PLATFORM,
        tensorrt_builder("fp16"),
        gpu=True,
    ),
    Target(
        "tensorrt-int8",
        "tensorrt",
        "int8",
        "model.plan",
        "tensorrt",
        TRT_PLATFORM,
        tensorrt_builder("int8"),
        gpu=True,
    ),
    Target(
        "torch-cuda-bf16",
        "torch",
        "bf16",
        "model.pt2",
        "torch",
        "",
        torch_program_builder("bf16"),
        gpu=True,
    ),
)  # fmt: skip  (a table reads better than one argument per line)
TARGETS: dict[str, Target] = {target.name: target for target in _ALL}


def get_target(name: str) -> Target:
    """A target by name, or an ExportError listing the known ones."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ExportError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}") from None
