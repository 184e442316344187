"""What a served model is, read from the server's metadata, for callers that pick a client by it."""

from __future__ import annotations

from typing import Literal

from . import Protocol
from .routing import output_names
from .text import EMBEDDINGS_OUTPUT

TextModelKind = Literal["embedder", "classifier"]


def text_model_kind(
    model: str, url: str | None, protocol: Protocol, timeout_s: float = 30.0
) -> TextModelKind:
    """A text model that declares an ``embeddings`` output embeds; any other classifies."""
    if EMBEDDINGS_OUTPUT in output_names(model, url, protocol, timeout_s):
        return "embedder"
    return "classifier"
