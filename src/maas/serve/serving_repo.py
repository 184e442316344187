"""Build the repository the embedded server runs from the canonical one, without touching it.

The bundled tritonserver has only the Python backend. Python models and ensembles are linked
as they are; a model whose backend the server lacks is replaced by a Python-backend adapter
with the same name, inputs, outputs, batching and instance groups, running the same artifact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from maas.base.errors import RepositoryError, ServerError
from maas.base.served.triton_models import RUNTIME_ADAPTER
from maas.base.triton.config import DEFAULT_ARTIFACTS, ModelConfig, backend_of
from maas.base.triton.parameters import PADDING_STRATEGIES, AdapterParameters
from maas.base.triton.repository import ModelRepository

NATIVE = ("python", "ensemble")  # what the bundled server runs itself
ADAPTED_BACKENDS = tuple(DEFAULT_ARTIFACTS)  # served through the runtime adapter


@dataclass(frozen=True)
class ServedModel:
    """How one model of the canonical repository is served."""

    name: str
    backend: str  # the backend its config names
    served_by: str  # "native" or "python adapter"
    config: ModelConfig = field(default_factory=ModelConfig, compare=False, repr=False)


def build_serving_repository(
    canonical: ModelRepository, target: Path, padding_strategy: str = "buckets"
) -> list[ServedModel]:
    """Fill target with one entry per canonical model; returns how each is served.

    padding_strategy: how adapters batch variable-length rows (see maas.base.served.batching).
    """
    if padding_strategy not in PADDING_STRATEGIES:
        raise ServerError(
            f"padding strategy must be one of {', '.join(PADDING_STRATEGIES)}, "
            f"got {padding_strategy!r}"
        )
    names = canonical.model_names()
    if not names:
        raise RepositoryError(
            f"model repository {canonical.root} holds no models; run `maas export`"
        )
    target.mkdir(parents=True, exist_ok=True)
    return [serve_model(canonical, target, name, padding_strategy) for name in names]


def serve_model(
    canonical: ModelRepository, target: Path, name: str, padding_strategy: str
) -> ServedModel:
    """Link a model the server runs natively, or write its adapter."""
    config = canonical.read_config(name)
    backend = backend_of(config)
    if backend in NATIVE:
        (target / name).symlink_to(canonical.model_dir(name).resolve(), target_is_directory=True)
        return ServedModel(name, backend, "native", config)
    if backend in ADAPTED_BACKENDS:
        parameters = AdapterParameters.for_model(config, padding_strategy)
        write_adapter(canonical, ModelRepository(target), config, parameters)
        return ServedModel(name, backend, "python adapter", config)
    raise ServerError(
        f"model {name!r} needs the {backend} backend, which the embedded server lacks and "
        f"maas has no adapter for (adapters: {', '.join(ADAPTED_BACKENDS)}); serve this "
        "repository with NVIDIA's Triton container instead"
    )


def write_adapter(
    canonical: ModelRepository,
    served: ModelRepository,
    config: ModelConfig,
    parameters: AdapterParameters,
) -> None:
    """The adapted config, the adapter code and links to the artifacts, version by version."""
    versions = canonical.versions(config.name)
    if not versions:
        raise RepositoryError(
            f"model {config.name!r} has no version folder; run `maas export {config.name}`"
        )
    for version in versions:
        artifact = canonical.version_dir(config.name, version) / parameters.artifact
        if not artifact.is_file():
            raise RepositoryError(f"{artifact} is missing; run `maas export {config.name}`")
        folder = served.version_dir(config.name, version)
        folder.mkdir(parents=True)
        for part in artifact.parent.iterdir():  # model.xml needs its model.bin beside it
            (folder / part.name).symlink_to(part.resolve())
        RUNTIME_ADAPTER.install(folder)
    served.write_config(adapted_config(config, parameters))
    for extra in canonical.model_dir(config.name).iterdir():
        if extra.is_file() and extra.name != "config.pbtxt":  # labels and other side files
            (served.model_dir(config.name) / extra.name).symlink_to(extra.resolve())


def adapted_config(config: ModelConfig, parameters: AdapterParameters) -> ModelConfig:
    """The canonical config, served by the Python backend with the adapter's parameters."""
    adapted = ModelConfig()
    adapted.CopyFrom(config)
    adapted.platform = ""
    adapted.backend = "python"
    adapted.default_model_filename = ""
    parameters.write(adapted)
    if parameters.model.padding_mask is not None:
        # The adapter pads rows itself, so the batcher may group requests of any length;
        # without this Triton batches only requests whose shapes match exactly.
        for tensor in adapted.input:
            tensor.allow_ragged_batch = any(dim == -1 for dim in tensor.dims)
    return adapted
