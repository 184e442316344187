"""Encoded image bytes (JPEG/PNG) → normalised NCHW float32: the image preprocessor's core.

Self-contained (numpy and Pillow only): export copies this file beside the Triton model that
wraps it, so the canonical repository runs in NVIDIA's container without maas installed; the
benchmarks and the naive service import it from maas. Settings come from the preprocess
model's config parameters (JSON values): height, width, channels, mean, std, resize (a Pillow
filter name) and center_crop.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # refuse decompression bombs long before they exhaust memory
_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


class InvalidImageError(ValueError):
    """An input that is not a decodable image."""


class ImagePreprocessor:
    """Decode, resize and normalise one image, as the settings of a preprocess config say."""

    def __init__(self, settings: dict[str, Any], model_name: str, input_name: str) -> None:
        """Settings: height, width, channels, mean, std, resize and center_crop."""
        self.model_name = model_name
        self.input_name = input_name
        self.size = (int(settings["width"]), int(settings["height"]))
        self.mode = "L" if int(settings["channels"]) == 1 else "RGB"
        self.resample = _FILTERS[settings["resize"]]
        self.center_crop = bool(settings["center_crop"])
        self.mean = np.asarray(settings["mean"], dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(settings["std"], dtype=np.float32).reshape(-1, 1, 1)

    @classmethod
    def from_config(cls, config: dict[str, Any], model_name: str) -> ImagePreprocessor:
        """Build from a model config in Triton's JSON form (parameters hold JSON values)."""
        settings = {
            key: json.loads(value["string_value"]) for key, value in config["parameters"].items()
        }
        return cls(settings, model_name, config["input"][0]["name"])

    def preprocess(self, encoded: bytes, index: int) -> np.ndarray:
        """Decode one image and turn it into a normalised CHW array."""
        image = self.decode(encoded, index).convert(self.mode)
        if self.center_crop:
            image = self.resize_and_crop(image)
        else:
            image = image.resize(self.size, self.resample)
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        chw = pixels[None, :, :] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        return np.ascontiguousarray((chw - self.mean) / self.std, dtype=np.float32)

    def decode(self, encoded: bytes, index: int) -> Image.Image:
        """Open and fully decode an image, with a clear error naming the bad item."""
        where = f"{self.model_name}: {self.input_name}[{index}]"
        if not isinstance(encoded, bytes) or not encoded:
            raise InvalidImageError(f"{where} is empty; expected the bytes of a JPEG or PNG file")
        try:
            image = Image.open(io.BytesIO(encoded))
            if image.width * image.height > MAX_PIXELS:
                raise InvalidImageError(
                    f"{where} is {image.width}×{image.height}, "
                    f"over the limit of {MAX_PIXELS} pixels"
                )
            image.load()
        except InvalidImageError:
            raise
        except UnidentifiedImageError:  # its message names a memory address, not the cause
            raise InvalidImageError(
                f"{where} ({len(encoded)} bytes) is not a decodable image: no known image "
                "format; expected the bytes of a JPEG or PNG file"
            ) from None
        except Exception as error:  # Pillow raises several types for undecodable data
            raise InvalidImageError(
                f"{where} ({len(encoded)} bytes) is not a decodable image: {error}; "
                "expected the bytes of a JPEG or PNG file"
            ) from None
        return image

    def resize_and_crop(self, image: Image.Image) -> Image.Image:
        """Scale the short side to the target, then cut out the centre."""
        width, height = self.size
        scale = max(width / image.width, height / image.height)
        scaled = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
        image = image.resize(scaled, self.resample)
        left, top = (scaled[0] - width) // 2, (scaled[1] - height) // 2
        return image.crop((left, top, left + width, top + height))

    def preprocess_batch(self, encoded: np.ndarray) -> np.ndarray:
        """Every image of a request's BYTES tensor, stacked into one NCHW batch."""
        return np.stack([self.preprocess(item, i) for i, item in enumerate(encoded.reshape(-1))])
