"""Build the repository the embedded server runs from the canonical one, without touching it.

The bundled tritonserver has only the Python backend. Python models and ensembles are linked
as they are; a model whose backend the server lacks is replaced by a Python-backend adapter
with the same name, inputs, outputs, batching and instance groups, running the same artifact.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from maas.errors import RepositoryError, ServerError
from maas.export.repository import ModelRepository
from maas.export.triton_config import ModelConfig
from maas.triton_models import RUNTIME_ADAPTER

from .batching import STRATEGIES

PYTHON_FILE = "model.py"
NATIVE = ("python", "ensemble")  # what the bundled server runs itself
# Backends served through the runtime adapter, and the file each loads by default.
ADAPTED_BACKENDS = {"onnxruntime": "model.onnx", "openvino": "model.xml", "tensorrt": "model.plan"}
_PLATFORM_BACKENDS = {
    "ensemble": "ensemble",
    "onnxruntime_onnx": "onnxruntime",
    "tensorrt_plan": "tensorrt",
    "pytorch_libtorch": "pytorch",
    "tensorflow_savedmodel": "tensorflow",
}


@dataclass(frozen=True)
class ServedModel:
    """How one model of the canonical repository is served."""

    name: str
    backend: str  # the backend its config names
    served_by: str  # "native" or "python adapter"


def backend_of(config: ModelConfig) -> str:
    """The backend a config asks for, from `backend` or else from `platform`."""
    if config.backend:
        return str(config.backend)
    if config.platform in _PLATFORM_BACKENDS:
        return _PLATFORM_BACKENDS[config.platform]
    raise RepositoryError(f"model {config.name!r} names neither a backend nor a known platform")


def build_serving_repository(
    canonical: ModelRepository, target: Path, padding_strategy: str = "buckets"
) -> list[ServedModel]:
    """Fill target with one entry per canonical model; returns how each is served.

    padding_strategy: how adapters batch variable-length rows (see maas.server.batching).
    """
    if padding_strategy not in STRATEGIES:
        raise ServerError(
            f"padding strategy must be one of {', '.join(STRATEGIES)}, got {padding_strategy!r}"
        )
    names = canonical.model_names()
    if not names:
        raise RepositoryError(
            f"model repository {canonical.root} holds no models; run `maas export`"
        )
    target.mkdir(parents=True, exist_ok=True)
    served = []
    for name in names:
        config = canonical.read_config(name)
        backend = backend_of(config)
        if backend in NATIVE:
            (target / name).symlink_to(
                canonical.model_dir(name).resolve(), target_is_directory=True
            )
            served.append(ServedModel(name, backend, "native"))
        elif backend in ADAPTED_BACKENDS:
            write_adapter(canonical, ModelRepository(target), config, backend, padding_strategy)
            served.append(ServedModel(name, backend, "python adapter"))
        else:
            raise ServerError(
                f"model {name!r} needs the {backend} backend, which the embedded server lacks and "
                f"maas has no adapter for (adapters: {', '.join(ADAPTED_BACKENDS)}); serve this "
                "repository with NVIDIA's Triton container instead"
            )
    return served


def write_adapter(
    canonical: ModelRepository,
    served: ModelRepository,
    config: ModelConfig,
    backend: str,
    padding_strategy: str,
) -> None:
    """The adapted config, the adapter code and links to the artifacts, version by version."""
    artifact_name = config.default_model_filename or ADAPTED_BACKENDS[backend]
    versions = canonical.versions(config.name)
    if not versions:
        raise RepositoryError(
            f"model {config.name!r} has no version folder; run `maas export {config.name}`"
        )
    for version in versions:
        artifact = canonical.version_dir(config.name, version) / artifact_name
        if not artifact.is_file():
            raise RepositoryError(f"{artifact} is missing; run `maas export {config.name}`")
        folder = served.version_dir(config.name, version)
        folder.mkdir(parents=True)
        for part in artifact.parent.iterdir():  # model.xml needs its model.bin beside it
            (folder / part.name).symlink_to(part.resolve())
        shutil.copyfile(RUNTIME_ADAPTER, folder / PYTHON_FILE)
    adapted = ModelConfig()
    adapted.CopyFrom(config)
    adapted.platform = ""
    adapted.backend = "python"
    adapted.default_model_filename = ""
    adapted.parameters["artifact"].string_value = artifact_name
    adapted.parameters["runtime"].string_value = backend
    adapted.parameters["padding_strategy"].string_value = padding_strategy
    if "padding_mask" in adapted.parameters:
        # The adapter pads rows itself, so the batcher may group requests of any length;
        # without this Triton batches only requests whose shapes match exactly.
        for tensor in adapted.input:
            tensor.allow_ragged_batch = any(dim == -1 for dim in tensor.dims)
    served.write_config(adapted)
    for extra in canonical.model_dir(config.name).iterdir():
        if extra.is_file() and extra.name != "config.pbtxt":  # labels and other side files
            (served.model_dir(config.name) / extra.name).symlink_to(extra.resolve())
