"""Real request payloads for a served model, built from the model repository alone.

Image ensembles get the bytes of a real photograph; text ensembles get real sentences of
mixed length, one per request; models that take tensors get what their companion preprocess
or tokenizer would have made of the same photograph or sentences, computed here with the same
code the server runs. Every load generator and every in-process baseline draws from these, so
the server and the baselines see the same inputs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf.json_format import MessageToDict
from tritonclient.grpc import model_config_pb2 as mc

from maas.base.errors import WorkloadError
from maas.base.sentences import SENTENCES
from maas.base.served.image import ImagePreprocessor
from maas.base.served.text import TextTokenizer
from maas.base.triton.names import IMAGE, TEXT
from maas.base.triton.repository import ModelRepository

Inputs = dict[str, np.ndarray]
RAW_IMAGE_INPUT = IMAGE.raw_input
RAW_TEXT_INPUT = TEXT.raw_input


@dataclass(frozen=True)
class Workload:
    """The inputs of each request (batch 1) that a load test cycles through."""

    model: str
    kind: str  # image | text | image-tensor | text-tensor
    requests: tuple[Inputs, ...]

    def batch(self, size: int, start: int = 0) -> list[Inputs]:
        """`size` consecutive requests from `start`, wrapping around."""
        return [self.requests[(start + i) % len(self.requests)] for i in range(size)]


def sample_jpeg() -> bytes:
    """A real photograph (scikit-learn's bundled china.jpg, 427×640) as JPEG bytes."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    buffer = io.BytesIO()
    Image.fromarray(load_sample_images().images[0]).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def config_as_json(config: mc.ModelConfig) -> dict[str, Any]:
    """A model config in the JSON form Triton hands to Python models."""
    as_json: dict[str, Any] = MessageToDict(config, preserving_proto_field_name=True)
    return as_json


def image_preprocessor(repository: ModelRepository, model: str) -> ImagePreprocessor:
    """The preprocessing the server runs for `model`, from its companion's config."""
    name = IMAGE.prepare(model)
    return ImagePreprocessor.from_config(config_as_json(repository.read_config(name)), name)


def text_tokenizer(repository: ModelRepository, model: str) -> TextTokenizer:
    """The tokenizer the server runs for `model`, from its companion's config and files."""
    name = TEXT.prepare(model)
    folder = repository.version_dir(name, max(repository.versions(name)))
    return TextTokenizer.from_config(config_as_json(repository.read_config(name)), folder, name)


def build_workload(repository: ModelRepository, model: str, image: bytes | None = None) -> Workload:
    """Payloads for `model` as its config describes its inputs; image defaults to sample_jpeg()."""
    names = repository.model_names()
    if model not in names:
        raise WorkloadError(
            f"model {model!r} is not in {repository.root}; models: {', '.join(names)}"
        )
    inputs = [tensor.name for tensor in repository.read_config(model).input]
    encoded = image if image is not None else sample_jpeg()
    if inputs == [RAW_IMAGE_INPUT]:
        return Workload(model, "image", ({RAW_IMAGE_INPUT: bytes_tensor([encoded])},))
    if inputs == [RAW_TEXT_INPUT]:
        texts = tuple({RAW_TEXT_INPUT: bytes_tensor([s.encode()])} for s in SENTENCES)
        return Workload(model, "text", texts)
    if IMAGE.prepare(model) in names:
        pixels = image_preprocessor(repository, model).preprocess(encoded, 0)
        return Workload(model, "image-tensor", ({inputs[0]: pixels[None]},))
    if TEXT.prepare(model) in names:
        return Workload(model, "text-tensor", tokenized_requests(repository, model, inputs))
    raise WorkloadError(
        f"no real payload for {model!r}: it takes {', '.join(inputs)} and has neither an "
        f"image preprocess nor a tokenizer companion; benchmark its ensemble instead"
    )


def bytes_tensor(items: list[bytes]) -> np.ndarray:
    """A [1, n]-shaped BYTES tensor, as the ensembles take raw inputs."""
    return np.array(items, dtype=np.object_).reshape(1, -1)


def tokenized_requests(
    repository: ModelRepository, model: str, inputs: list[str]
) -> tuple[Inputs, ...]:
    """Each sentence tokenized as the server's tokenizer model does it: truncated, unpadded."""
    tokenizer = text_tokenizer(repository, model)
    requests = []
    for sentence in SENTENCES:
        ids, mask = tokenizer.tokenize([sentence])
        arrays = {"input_ids": ids, "attention_mask": mask}
        requests.append({name: arrays[name] for name in inputs})
    return tuple(requests)
