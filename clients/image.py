"""Image classification on Triton: encoded images or preprocessed tensors in, top-k labels out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from maas.base.errors import InvalidInputError

from . import common
from .checks import check_top_k
from .common import (
    PROBABILITIES_OUTPUT,
    Classification,
    batch_slices,
    classified_output,
    classify_batch,
    classify_batch_async,
    parse_classification,
    single_input,
)
from .info import Array, ModelInfo, takes_bytes_input
from .routing import IMAGE_COMPANION, AsyncRoutedClient, RoutedClient

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


def parse_top_k(raw: Array, count: int, model: str) -> list[list[Classification]]:
    """Turn a classification output into one top-k list per image."""
    return common.parse_top_k(raw, count, model, items="images")


class ImageClassifier(RoutedClient):
    """Blocking top-k image classifier for a model served by Triton (or its ``_image`` ensemble).

    Encoded images go to the named model if it decodes them itself, else to its image ensemble;
    preprocessed arrays always go to the named model.
    """

    companion = IMAGE_COMPANION

    def classify(self, images: Sequence[ImageInput], top_k: int = 5) -> list[list[Classification]]:
        """Return the top-k classes of each image, best first, in the order given."""
        check_top_k(top_k)
        if not images:
            return []
        batch = prepare_images(images)
        client = self._named if batch.kind == "tensor" else self._for_raw_inputs()
        return classify_batch(client, batch.array, top_k, "images")


class AsyncImageClassifier(AsyncRoutedClient):
    """Asyncio top-k image classifier; the same API as `ImageClassifier`."""

    companion = IMAGE_COMPANION

    async def classify(
        self, images: Sequence[ImageInput], top_k: int = 5
    ) -> list[list[Classification]]:
        """Return the top-k classes of each image, best first, in the order given."""
        check_top_k(top_k)
        if not images:
            return []
        batch = prepare_images(images)
        client = self._named if batch.kind == "tensor" else await self._for_raw_inputs()
        return await classify_batch_async(client, batch.array, top_k, "images")
