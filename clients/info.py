"""What a served model looks like to a client: its tensors and batching limit, read from the server.

`parse_model_info` turns Triton's metadata and config answers, in HTTP or gRPC-JSON form, into
a `ModelInfo`; everything else in the clients reads that instead of the raw answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

#: The numpy arrays the clients send and receive, of any dtype.
Array = npt.NDArray[Any]


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output as the server describes it (shape includes any batch dim)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    # From the model config; the server accepts requests that leave optional inputs out.
    optional: bool = False

    def describe(self) -> str:
        """Return e.g. ``input (FP32 [-1, 4])`` for error messages."""
        return f"{self.name} ({self.datatype} {list(self.shape)})"


@dataclass(frozen=True)
class ModelInfo:
    """What a client needs to know to call a model: its tensors and batching limit."""

    name: str
    versions: tuple[str, ...]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    max_batch_size: int

    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the model's inputs in server order."""
        return tuple(tensor.name for tensor in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the model's outputs in server order."""
        return tuple(tensor.name for tensor in self.outputs)


def takes_bytes_input(info: ModelInfo) -> bool:
    """Whether a model's single input is BYTES, i.e. it takes raw bytes (images, text)."""
    return len(info.inputs) == 1 and info.inputs[0].datatype == "BYTES"


def _tensor_infos(
    entries: Sequence[Mapping[str, Any]], optional: frozenset[str]
) -> tuple[TensorInfo, ...]:
    """Build TensorInfos from metadata entries; gRPC JSON spells int64 dims as strings."""
    return tuple(
        TensorInfo(
            name=str(entry["name"]),
            datatype=str(entry["datatype"]),
            shape=tuple(int(dim) for dim in entry.get("shape", ())),
            optional=str(entry["name"]) in optional,
        )
        for entry in entries
    )


def _unwrapped_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the model config itself: gRPC wraps it in ``{"config": {...}}``, HTTP does not."""
    inner = config.get("config")
    return inner if isinstance(inner, Mapping) else config


def _optional_inputs(model_config: Mapping[str, Any]) -> frozenset[str]:
    """Names of the inputs the model config marks optional."""
    return frozenset(
        str(entry["name"]) for entry in model_config.get("input", ()) if entry.get("optional")
    )


def parse_model_info(metadata: Mapping[str, Any], config: Mapping[str, Any]) -> ModelInfo:
    """Combine model metadata and config, in HTTP or gRPC-JSON form, into a `ModelInfo`.

    gRPC leaves out zero-valued fields, so a non-batching model has no ``max_batch_size``.
    """
    model_config = _unwrapped_config(config)
    return ModelInfo(
        name=str(metadata["name"]),
        versions=tuple(str(version) for version in metadata.get("versions", ())),
        inputs=_tensor_infos(metadata.get("inputs", ()), _optional_inputs(model_config)),
        outputs=_tensor_infos(metadata.get("outputs", ()), frozenset()),
        max_batch_size=int(model_config.get("max_batch_size", 0)),
    )
