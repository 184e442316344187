"""Real sample images to send to the server: held-out digits as PNG, photographs as JPEG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

DIGIT_PNG_SIZE = 64  # upscaled from 8×8 so the server has real resizing to do


def digit_png(pixels: np.ndarray, size: int = DIGIT_PNG_SIZE) -> Image.Image:
    """One 8×8 digit with values in [0, 1] as an upscaled 8-bit grayscale image."""
    gray = np.clip(np.round(pixels.reshape(8, 8) * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, mode="L").resize((size, size), Image.Resampling.NEAREST)


def write_held_out_digits(folder: Path, count: int) -> list[tuple[Path, int]]:
    """Write the first count held-out digits as PNG files; returns (path, true label) pairs."""
    from maas.export.models.digits import load_split

    _, images, _, labels = load_split()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(min(count, len(images))):
        path = folder / f"digit_{index:03d}_label_{labels[index]}.png"
        digit_png(images[index]).save(path)
        written.append((path, int(labels[index])))
    return written


def write_photos(folder: Path) -> list[Path]:
    """scikit-learn's bundled photographs as JPEG files."""
    from sklearn.datasets import load_sample_images

    samples = load_sample_images()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for image, filename in zip(samples.images, samples.filenames, strict=True):
        path = folder / Path(filename).name
        Image.fromarray(image).save(path, quality=90)
        paths.append(path)
    return paths
