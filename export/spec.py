"""Declarative model specs: everything the generic exporter needs to know about one model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output, without the batch dimension."""

    name: str
    dims: tuple[int, ...]
    dtype: str = "float32"
    format: str | None = None  # "NCHW" for image inputs; Triton's ModelInput.Format


@dataclass(frozen=True)
class ImagePreprocessing:
    """How the server turns encoded image bytes into the model's input tensor."""

    height: int
    width: int
    channels: int  # 1 = grayscale, 3 = RGB
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str = "bilinear"  # a Pillow resampling filter name: bilinear, box, bicubic, nearest
    center_crop: bool = False  # resize the short side, then crop the centre (ImageNet style)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError("mean and std need one value per channel")


@dataclass(frozen=True)
class Tolerance:
    """How close the exported artifact must stay to the source model."""

    atol: float
    rtol: float
    min_top1_agreement: float = 1.0


@dataclass(frozen=True)
class Batching:
    """Triton scheduling: dynamic batching and model instances."""

    max_batch_size: int = 32
    preferred_batch_sizes: tuple[int, ...] = (8, 16)
    max_queue_delay_us: int = 2000
    instance_count: int = 1


@dataclass
class BuiltModel:
    """A torch module ready to export, with the data that proves the export right."""

    module: torch.nn.Module
    labels: list[str]
    eval_inputs: np.ndarray  # real, preprocessed inputs (N, *dims)
    eval_targets: np.ndarray | None = None  # true labels where the data set has them
    metrics: dict[str, float] = field(default_factory=dict)  # e.g. held-out accuracy
    source: dict[str, str] = field(default_factory=dict)  # where weights and data came from


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: how to build it and how to serve it."""

    name: str
    description: str
    weights: str  # what the weights are: "trained here on …" or "seeded random (speed work only)"
    build: Callable[[], BuiltModel]
    input: TensorSpec
    outputs: tuple[TensorSpec, ...]
    tolerance: Tolerance
    preprocessing: ImagePreprocessing | None = None
    batching: Batching = Batching()
    classification_output: str = "probabilities"
    min_accuracy: float | None = None  # gate on held-out accuracy, where the data set has labels
    opset: int = 18
