"""Load an image model with real encoded images through the typed client."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from maas.clients import ImageClassifier
from maas.clients.core import Protocol

from .closed_loop import LoadResult, Request, run_closed_loop


def sample_jpeg() -> bytes:
    """A real photograph (scikit-learn's bundled china.jpg) as JPEG bytes."""
    from sklearn.datasets import load_sample_images

    buffer = io.BytesIO()
    Image.fromarray(load_sample_images().images[0]).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def bench_image_model(
    model: str,
    url: str | None,
    protocol: Protocol,
    concurrency: int,
    duration_s: float,
    image: Path | None = None,
) -> LoadResult:
    """Closed-loop load of model with one image per request; one client per worker."""
    payload = image.read_bytes() if image is not None else sample_jpeg()

    def make_request() -> Request:
        classifier = ImageClassifier(model, url=url, protocol=protocol)
        classifier.classify([payload], top_k=1)  # metadata lookup and connection set-up, untimed
        return lambda: classifier.classify([payload], top_k=5)

    return run_closed_loop(make_request, concurrency, duration_s)
