"""Load a served model with real inputs through the typed clients: images or texts."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

from PIL import Image

from maas.clients import ImageClassifier, TextEmbedder, input_kind
from maas.clients.core import Protocol
from maas.clients.routing import require_raw_kind
from maas.export.sentences import SENTENCES

from .closed_loop import LoadResult, Request, run_closed_loop


def sample_jpeg() -> bytes:
    """A real photograph (scikit-learn's bundled china.jpg) as JPEG bytes."""
    from sklearn.datasets import load_sample_images

    buffer = io.BytesIO()
    Image.fromarray(load_sample_images().images[0]).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def image_request(model: str, url: str | None, protocol: Protocol, payload: bytes) -> Request:
    """One client; each call classifies the same encoded image."""
    classifier = ImageClassifier(model, url=url, protocol=protocol)
    classifier.classify([payload], top_k=1)  # metadata lookup and connection set-up, untimed
    return lambda: classifier.classify([payload], top_k=5)


def text_request(model: str, url: str | None, protocol: Protocol, start: int) -> Request:
    """One client; each call embeds the next real sentence, so lengths vary as in production."""
    embedder = TextEmbedder(model, url=url, protocol=protocol)
    embedder.embed([SENTENCES[0]])  # metadata lookup and connection set-up, untimed
    texts = itertools.cycle(SENTENCES[start:] + SENTENCES[:start])
    return lambda: embedder.embed([next(texts)])


def bench_model(
    model: str,
    url: str | None,
    protocol: Protocol,
    concurrency: int,
    duration_s: float,
    image: Path | None = None,
) -> LoadResult:
    """Closed-loop load of model with one image or one text per request; one client per worker."""
    kind = require_raw_kind(model, input_kind(model, url, protocol))
    if kind == "text":
        starts = itertools.count(0, 7)
        return run_closed_loop(
            lambda: text_request(model, url, protocol, next(starts) % len(SENTENCES)),
            concurrency,
            duration_s,
        )
    payload = image.read_bytes() if image is not None else sample_jpeg()
    return run_closed_loop(
        lambda: image_request(model, url, protocol, payload), concurrency, duration_s
    )
