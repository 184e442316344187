"""Declarative model specs: everything the generic exporter needs to know about one model."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from maas.base.served.triton_models import IMAGE_PREPROCESS, TOKENIZER
from maas.base.triton.names import IMAGE, TEXT

Task = Literal[
    "image-classification", "text-classification", "feature-extraction", "text-generation"
]
Inputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output, without the batch dimension; -1 marks a dynamic axis."""

    name: str
    dims: tuple[int, ...]
    dtype: str = "float32"
    format: str | None = None  # "NCHW" for image inputs; Triton's ModelInput.Format
    # Names of the -1 dims, in order ("seq", "past"), where several dynamic axes are related
    # (a decoder's mask spans past + seq): the exporter then lets torch.export infer how, and
    # names the ONNX file's dims by them. Empty: one shared dynamic axis per position.
    axes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.axes and len(self.axes) != self.dims.count(-1):
            raise ValueError(f"{self.name}: axes must name each -1 dim of {self.dims}")


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

    companions = IMAGE
    triton_model = IMAGE_PREPROCESS

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError("mean and std need one value per channel")

    def parameters(self) -> dict[str, str]:
        """Settings for the preprocess model's config, as JSON strings."""
        settings: dict[str, object] = {
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": self.resize,
            "center_crop": self.center_crop,
        }
        return {key: json.dumps(value) for key, value in settings.items()}


@dataclass(frozen=True)
class TextPreprocessing:
    """How the server turns raw strings into token ids: a Hugging Face fast tokenizer."""

    max_length: int
    truncation: bool = True  # False: texts over max_length tokens are rejected, not cut

    companions = TEXT
    triton_model = TOKENIZER

    def __post_init__(self) -> None:
        if self.max_length < 2:
            raise ValueError(
                f"max_length must leave room for special tokens, got {self.max_length}"
            )

    def parameters(self) -> dict[str, str]:
        """Settings for the tokenizer model's config, as JSON strings."""
        return {
            "max_length": json.dumps(self.max_length),
            "truncation": json.dumps(self.truncation),
        }


Preprocessing = ImagePreprocessing | TextPreprocessing


@dataclass(frozen=True)
class Tolerance:
    """How close the exported artifact must stay to the source model."""

    atol: float
    rtol: float
    min_top1_agreement: float = 1.0  # classification outputs
    min_cosine: float = 0.9999  # embedding outputs
    # Accuracy gates for reduced-precision artifacts (bf16, int8, fp16), against fp32:
    reduced_min_top1_agreement: float = 0.99
    reduced_max_accuracy_drop: float = 0.005  # held-out accuracy, where the data has labels
    reduced_min_cosine: float = 0.999


KV = ("key", "value")


@dataclass(frozen=True)
class KVCache:
    """A decoder's key/value cache as its step graph takes and returns it, one pair per layer.

    Inputs past_key_values.{i}.key/value and outputs present.{i}.key/value, each
    [batch, heads, positions, head_dim].
    """

    layers: int
    heads: int
    head_dim: int

    def past_names(self) -> list[str]:
        """The cache inputs, in the order the step graph takes them (key, value per layer)."""
        return [f"past_key_values.{i}.{kind}" for i in range(self.layers) for kind in KV]

    def present_names(self) -> list[str]:
        """The cache outputs, in the order the step graph returns them after the logits."""
        return [f"present.{i}.{kind}" for i in range(self.layers) for kind in KV]


@dataclass(frozen=True)
class Batching:
    """Triton scheduling: dynamic batching and model instances."""

    max_batch_size: int = 32
    preferred_batch_sizes: tuple[int, ...] = (8, 16)
    # 0: a batch is whatever queued while the model was busy. Any wait here is paid in full by
    # every request at low load (measured: +2 ms per step at concurrency 1), for no gain at
    # saturation, where requests queue behind the running batch anyway.
    max_queue_delay_us: int = 0
    instance_count: int = 1


@dataclass
class BuiltModel:
    """A torch module ready to export, with the data that proves the export right."""

    module: torch.nn.Module
    labels: list[str]  # class names; empty for models that do not classify
    eval_inputs: Inputs  # real inputs by name, batch first
    eval_targets: np.ndarray | None = None  # true labels where the data set has them
    metrics: dict[str, float] = field(default_factory=dict)  # e.g. held-out accuracy
    source: dict[str, str] = field(default_factory=dict)  # where weights and data came from
    assets: dict[str, Path] = field(default_factory=dict)  # files the preprocess model needs
    # Files and folders installed beside the artifact in every version folder (name → source).
    version_files: dict[str, Path] = field(default_factory=dict)
    # Inputs to trace the ONNX export with, where eval_inputs' shapes would fix a dynamic axis
    # (torch.export specialises axes of size 0 or 1: a decode step has seq 1). None: eval_inputs.
    trace_inputs: Inputs | None = None
    # Token ids of real prompts, for decoders: the cached-generation check runs them.
    prompts: list[list[int]] = field(default_factory=list)

    @property
    def eval_count(self) -> int:
        """How many evaluation samples there are."""
        return len(next(iter(self.eval_inputs.values())))


@dataclass(frozen=True)
class ModelSpec:
    """An exportable model: how to build it and how to serve it."""

    name: str
    description: str
    weights: str  # what the weights are: "trained here on …" or "seeded random (speed work only)"
    task: Task
    build: Callable[[], BuiltModel]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    tolerance: Tolerance
    preprocessing: Preprocessing | None = None
    batching: Batching = Batching()
    min_accuracy: float | None = None  # gate on held-out accuracy, where the data set has labels
    opset: int = 18
    padding_mask: str | None = None  # input whose zeros mark padding (text models)
    cache: KVCache | None = None  # text-generation: the step graph's key/value cache
    # Targets this model may be served with; empty: every target. A decoder's contract with its
    # server is one fp32 ONNX step graph, and reduced precision has no gate for it yet.
    targets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.task == "text-generation") != (self.cache is not None):
            raise ValueError(f"{self.name}: text-generation models, and only they, need a cache")

    @property
    def classification_output(self) -> str | None:
        """The output whose argmax is the predicted class, for classifiers."""
        classifies = self.task in ("image-classification", "text-classification")
        return "probabilities" if classifies else None

    @property
    def embedding_output(self) -> str | None:
        """The output holding sentence embeddings, for feature extractors."""
        return "embeddings" if self.task == "feature-extraction" else None

    @property
    def served_task(self) -> str:
        """The task recorded on the model's config for its server, where serving differs.

        A decoder is called once per generated token with its cache, not once per request:
        its server must know. One-shot models record none, so their configs stay as they were.
        """
        return self.task if self.cache is not None else ""
