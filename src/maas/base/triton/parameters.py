"""Typed config parameters: what export records for maas and what a serving adapter runs by.

Triton keeps `parameters` as string maps; these dataclasses are the one place that spells
their keys, writes them into a `ModelConfig` and reads them back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from maas.base.errors import RepositoryError

from .config import ModelConfig, artifact_of, backend_of, string_parameters

PADDING_STRATEGIES = ("buckets", "longest")  # how an adapter batches variable-length rows
DEFAULT_PADDING_STRATEGY = "buckets"
DEFAULT_MAX_WASTE = 0.25  # a bucket may compute at most 25 % more positions than real tokens


@dataclass(frozen=True)
class ModelParameters:
    """What export records on a served model's config (native backends ignore these keys)."""

    target: str = ""  # the export target that built the artifact, e.g. "openvino-bf16"
    precision: str = "fp32"  # what the runtime computes in
    padding_mask: str | None = None  # input whose zeros mark padding (text models)
    threads: int = 0  # runtime threads; 0: the runtime's default (all cores)
    # What the server must do with the model where it is not one call per request:
    # "text-generation" (a decoder step with a key/value cache). Empty for one-shot models.
    task: str = ""

    def write(self, config: ModelConfig) -> None:
        """Set these parameters on config; unset ones are left out."""
        if self.target:
            config.parameters["maas_target"].string_value = self.target
        config.parameters["precision"].string_value = self.precision
        if self.padding_mask is not None:
            config.parameters["padding_mask"].string_value = self.padding_mask
        if self.threads:
            config.parameters["threads"].string_value = str(self.threads)
        if self.task:
            config.parameters["maas_task"].string_value = self.task

    @classmethod
    def read(cls, parameters: Mapping[str, str]) -> ModelParameters:
        """From a config's parameters as strings."""
        return cls(
            target=parameters.get("maas_target", ""),
            precision=parameters.get("precision", "fp32"),
            padding_mask=parameters.get("padding_mask") or None,
            threads=int(parameters.get("threads", "0") or 0),
            task=parameters.get("maas_task", ""),
        )


@dataclass(frozen=True)
class AdapterParameters:
    """Everything the serving adapter needs to run a model's artifact as the server would."""

    artifact: str  # file name inside each version folder
    runtime: str  # a maas runtime: onnxruntime, openvino, tensorrt
    model: ModelParameters
    padding_strategy: str = DEFAULT_PADDING_STRATEGY
    max_padding_waste: float = DEFAULT_MAX_WASTE

    def __post_init__(self) -> None:
        if self.padding_strategy not in PADDING_STRATEGIES:
            raise RepositoryError(
                f"padding_strategy must be one of {', '.join(PADDING_STRATEGIES)}, "
                f"got {self.padding_strategy!r}"
            )

    @classmethod
    def for_model(
        cls, config: ModelConfig, padding_strategy: str = DEFAULT_PADDING_STRATEGY
    ) -> AdapterParameters:
        """How the adapter serves a model of the canonical repository."""
        return cls(
            artifact=artifact_of(config),
            runtime=backend_of(config),
            model=ModelParameters.read(string_parameters(config)),
            padding_strategy=padding_strategy,
        )

    def write(self, config: ModelConfig) -> None:
        """Set these parameters on an adapted config."""
        self.model.write(config)
        config.parameters["artifact"].string_value = self.artifact
        config.parameters["runtime"].string_value = self.runtime
        config.parameters["padding_strategy"].string_value = self.padding_strategy
        if self.max_padding_waste != DEFAULT_MAX_WASTE:
            config.parameters["max_padding_waste"].string_value = str(self.max_padding_waste)

    @classmethod
    def read(cls, parameters: Mapping[str, str]) -> AdapterParameters:
        """From an adapted config's parameters as strings."""
        missing = [key for key in ("artifact", "runtime") if key not in parameters]
        if missing:
            raise RepositoryError(f"adapter config lacks parameter(s) {', '.join(missing)}")
        return cls(
            artifact=parameters["artifact"],
            runtime=parameters["runtime"],
            model=ModelParameters.read(parameters),
            padding_strategy=parameters.get("padding_strategy", DEFAULT_PADDING_STRATEGY),
            max_padding_waste=float(parameters.get("max_padding_waste", DEFAULT_MAX_WASTE)),
        )
