"""Image classification on Triton: encoded images or preprocessed tensors in, top-k labels out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from maas.conventions import IMAGE_ENSEMBLE_SUFFIX

from . import common
from .common import (
    PROBABILITIES_OUTPUT,
    Classification,
    batch_slices,
    check_top_k,
    classified_output,
    parse_classification,
    single_input,
    takes_bytes_input,
)
from .core import Array, AsyncModelClient, ModelClient, ModelInfo, Protocol
from .errors import InvalidInputError, ModelNotFoundError

# Shared helpers stay importable from here, where the image clients first defined them.
__all__ = [
    "PROBABILITIES_OUTPUT",
    "AsyncImageClassifier",
    "Classification",
    "ImageBatch",
    "ImageClassifier",
    "ImageInput",
    "batch_slices",
    "check_top_k",
    "classified_output",
    "ensemble_name",
    "missing_ensemble_error",
    "parse_classification",
    "parse_top_k",
    "prepare_images",
    "single_input",
    "takes_encoded_images",
]

ImageInput = str | Path | bytes | Array


@dataclass(frozen=True)
class ImageBatch:
    """Images of one kind, ready to send: encoded bytes ``[n, 1]`` or float tensors NCHW."""

    kind: Literal["encoded", "tensor"]
    array: Array

    def __len__(self) -> int:
        return int(self.array.shape[0])


def _read_encoded(image: str | Path | bytes) -> bytes:
    """Return the encoded image bytes of a file path or of bytes given directly."""
    if isinstance(image, bytes):
        return image
    try:
        return Path(image).read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read image file {str(image)!r}: {exc}") from exc


def _as_nchw(image: Array) -> Array:
    """Return a preprocessed tensor as NCHW, adding the batch axis to a CHW image."""
    if image.ndim == 3:
        return image[np.newaxis]
    if image.ndim == 4:
        return image
    raise InvalidInputError(
        f"a preprocessed image must have shape [C,H,W] or [N,C,H,W], got {list(image.shape)}"
    )


def prepare_images(images: Sequence[ImageInput]) -> ImageBatch:
    """Sort images into one batch; encoded images and arrays cannot be mixed in one call."""
    arrays = [image for image in images if isinstance(image, np.ndarray)]
    if arrays and len(arrays) != len(images):
        raise InvalidInputError(
            "cannot mix encoded images (paths or bytes) and preprocessed arrays in one call; "
            f"got {len(images) - len(arrays)} encoded and {len(arrays)} arrays"
        )
    if arrays:
        return ImageBatch("tensor", np.concatenate([_as_nchw(image) for image in arrays]))
    encoded = np.empty((len(images), 1), dtype=object)
    for row, image in enumerate(images):
        if not isinstance(image, (str, Path, bytes)):
            raise InvalidInputError(
                f"image {row} is a {type(image).__name__}; expected a path, bytes or an ndarray"
            )
        encoded[row, 0] = _read_encoded(image)
    return ImageBatch("encoded", encoded)


def takes_encoded_images(info: ModelInfo) -> bool:
    """Whether a model's single input is BYTES, i.e. it decodes images itself."""
    return takes_bytes_input(info)


def ensemble_name(model: str) -> str:
    """Name of the ensemble that serves encoded images for a raw classifier."""
    return model + IMAGE_ENSEMBLE_SUFFIX


def missing_ensemble_error(
    model: str, info: ModelInfo, cause: ModelNotFoundError
) -> ModelNotFoundError:
    """Explain that encoded images need the image ensemble, which the server does not have."""
    inputs = ", ".join(tensor.describe() for tensor in info.inputs)
    return ModelNotFoundError(
        f"model {model!r} takes preprocessed tensors ({inputs}), and the server has no image "
        f"ensemble {ensemble_name(model)!r} to decode encoded images; pass float32 arrays "
        f"shaped [C,H,W] or [N,C,H,W] instead, or serve the ensemble ({cause})",
        model=ensemble_name(model),
        status=cause.status,
    )


def parse_top_k(raw: Array, count: int, model: str) -> list[list[Classification]]:
    """Turn a classification output into one top-k list per image."""
    return common.parse_top_k(raw, count, model, items="images")


class ImageClassifier:
    """Blocking top-k image classifier for a model served by Triton."""

    def __init__(
        self,
        model: str,
        url: str | None = None,
        protocol: Protocol = "http",
        timeout_s: float = 30.0,
        version: str = "",
    ) -> None:
        self.model = model
        self._options: dict[str, Any] = {
            "url": url,
            "protocol": protocol,
            "timeout_s": timeout_s,
            "version": version,
        }
        self._classifier = ModelClient(model, **self._options)
        self._ensemble: ModelClient | None = None

    def _client_for(self, kind: Literal["encoded", "tensor"]) -> ModelClient:
        """Return the named model, or its image ensemble if it cannot decode encoded images."""
        if kind == "tensor" or takes_encoded_images(self._classifier.info):
            return self._classifier
        if self._ensemble is None:
            ensemble = ModelClient(ensemble_name(self.model), **self._options)
            try:
                _ = ensemble.info  # fetch now to report a missing ensemble clearly
            except ModelNotFoundError as exc:
                ensemble.close()
                raise missing_ensemble_error(self.model, self._classifier.info, exc) from exc
            self._ensemble = ensemble
        return self._ensemble

    def classify(self, images: Sequence[ImageInput], top_k: int = 5) -> list[list[Classification]]:
        """Return the top-k classes of each image, best first, in the order given."""
        check_top_k(top_k)
        if not images:
            return []
        batch = prepare_images(images)
        client = self._client_for(batch.kind)
        info = client.info
        name, output = single_input(info), classified_output(info)
        results: list[list[Classification]] = []
        for part in batch_slices(len(batch), info.max_batch_size):
            chunk = batch.array[part]
            raw = client.infer({name: chunk}, outputs=[output], class_count=top_k)[output]
            results.extend(parse_top_k(raw, len(chunk), client.model))
        return results

    def close(self) -> None:
        """Close the connections to the server."""
        self._classifier.close()
        if self._ensemble is not None:
            self._ensemble.close()

    def __enter__(self) -> ImageClassifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncImageClassifier:
    """Asyncio top-k image classifier; the same API as `ImageClassifier`."""

    def __init__(
        self,
        model: str,
        url: str | None = None,
        protocol: Protocol = "http",
        timeout_s: float = 30.0,
        version: str = "",
    ) -> None:
        self.model = model
        self._options: dict[str, Any] = {
            "url": url,
            "protocol": protocol,
            "timeout_s": timeout_s,
            "version": version,
        }
        self._classifier = AsyncModelClient(model, **self._options)
        self._ensemble: AsyncModelClient | None = None

    async def _client_for(self, kind: Literal["encoded", "tensor"]) -> AsyncModelClient:
        """Return the named model, or its image ensemble if it cannot decode encoded images."""
        if kind == "tensor" or takes_encoded_images(await self._classifier.info()):
            return self._classifier
        if self._ensemble is None:
            ensemble = AsyncModelClient(ensemble_name(self.model), **self._options)
            try:
                await ensemble.info()  # fetch now to report a missing ensemble clearly
            except ModelNotFoundError as exc:
                await ensemble.close()
                info = await self._classifier.info()
                raise missing_ensemble_error(self.model, info, exc) from exc
            self._ensemble = ensemble
        return self._ensemble

    async def classify(
        self, images: Sequence[ImageInput], top_k: int = 5
    ) -> list[list[Classification]]:
        """Return the top-k classes of each image, best first, in the order given."""
        check_top_k(top_k)
        if not images:
            return []
        batch = prepare_images(images)
        client = await self._client_for(batch.kind)
        info = await client.info()
        name, output = single_input(info), classified_output(info)
        results: list[list[Classification]] = []
        for part in batch_slices(len(batch), info.max_batch_size):
            chunk = batch.array[part]
            outputs = await client.infer({name: chunk}, outputs=[output], class_count=top_k)
            results.extend(parse_top_k(outputs[output], len(chunk), client.model))
        return results

    async def close(self) -> None:
        """Close the connections to the server."""
        await self._classifier.close()
        if self._ensemble is not None:
            await self._ensemble.close()

    async def __aenter__(self) -> AsyncImageClassifier:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
