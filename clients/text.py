"""Text models on Triton: raw strings in, embeddings or top-k labels out.

A text model ``NAME`` takes token ids; its companion ensemble ``NAME_text`` takes the raw strings
(``TEXT``, BYTES ``[n, 1]``) and tokenizes them on the server. The clients send to the named
model when it takes BYTES itself, else to the ensemble.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from maas.base.errors import InvalidInputError

from .checks import check_top_k
from .common import (
    Classification,
    batch_slices,
    classify_batch,
    classify_batch_async,
    named_or_first_output,
    single_input,
    split_rows,
)
from .info import Array, ModelInfo
from .routing import TEXT_COMPANION, AsyncRoutedClient, RoutedClient

TextInput = str | bytes
EMBEDDINGS_OUTPUT = "embeddings"


def encode_texts(texts: Sequence[TextInput]) -> Array:
    """Return texts as a BYTES batch ``[n, 1]``: str as UTF-8, bytes as they are.

    Bytes pass through unchecked so callers can send any payload and let the server judge it.
    """
    # A lone str is a Sequence[str] too; embedding its characters one by one is never meant.
    if isinstance(texts, (str, bytes)):
        raise InvalidInputError(
            f"texts must be a sequence of str or bytes, got a single {type(texts).__name__}; "
            "wrap it in a list"
        )
    encoded = np.empty((len(texts), 1), dtype=object)
    for row, text in enumerate(texts):
        if isinstance(text, str):
            encoded[row, 0] = text.encode("utf-8")
        elif isinstance(text, bytes):
            encoded[row, 0] = text
        else:
            raise InvalidInputError(f"text {row} is a {type(text).__name__}; expected str or bytes")
    return encoded


def embedding_output(info: ModelInfo) -> str:
    """Return the output holding embeddings: ``embeddings`` if present, else the first output."""
    return named_or_first_output(info, EMBEDDINGS_OUTPUT)


def embedding_dim(info: ModelInfo, output: str) -> int:
    """The embedding size the output metadata declares; 0 when it is variable (-1)."""
    shape = next(tensor.shape for tensor in info.outputs if tensor.name == output)
    return max(shape[-1], 0) if shape else 0


def parse_embeddings(raw: Array, count: int, model: str) -> Array:
    """Turn one batch's embedding output into float32 rows, one per text."""
    return split_rows(raw, count, model, "embedding", "texts").astype(np.float32, copy=False)


def join_embeddings(parts: Sequence[Array], info: ModelInfo, output: str) -> Array:
    """Stack per-batch embeddings in order; no parts gives ``(0, dim)`` from the metadata."""
    if not parts:
        return np.empty((0, embedding_dim(info, output)), dtype=np.float32)
    return np.concatenate(parts)


class TextEmbedder(RoutedClient):
    """Blocking text embedder for a model served by Triton (or its ``_text`` ensemble).

    Like `ModelClient`, one instance serves one thread at a time.
    """

    companion = TEXT_COMPANION

    def embed(self, texts: Sequence[TextInput]) -> Array:
        """Return one float32 embedding row per text, shape ``(n, dim)``, in the order given.

        str is sent as UTF-8, bytes as they are. Batches larger than the model's
        ``max_batch_size`` are split into several calls. An empty list makes no inference call
        and returns shape ``(0, dim)``, ``dim`` read from the model metadata (0 if variable),
        so it still needs the server.
        """
        batch = encode_texts(texts)
        client = self._for_raw_inputs()
        info = client.info()
        name, output = single_input(info), embedding_output(info)
        parts: list[Array] = []
        for part in batch_slices(len(batch), info.max_batch_size):
            chunk = batch[part]
            raw = client.infer({name: chunk}, outputs=[output])[output]
            parts.append(parse_embeddings(raw, len(chunk), client.model))
        return join_embeddings(parts, info, output)


class TextClassifier(RoutedClient):
    """Blocking top-k text classifier for a model served by Triton (or its ``_text`` ensemble).

    Like `ModelClient`, one instance serves one thread at a time.
    """

    companion = TEXT_COMPANION

    def classify(self, texts: Sequence[TextInput], top_k: int = 5) -> list[list[Classification]]:
        """Return the top-k classes of each text, best first, in the order given.

        str is sent as UTF-8, bytes as they are. Batches larger than the model's
        ``max_batch_size`` are split into several calls. An empty list returns ``[]`` without
        contacting the server.
        """
        check_top_k(top_k)
        batch = encode_texts(texts)
        if not len(batch):
            return []
        return classify_batch(self._for_raw_inputs(), batch, top_k, "texts")


class AsyncTextEmbedder(AsyncRoutedClient):
    """Asyncio text embedder; the same API as `TextEmbedder`."""

    companion = TEXT_COMPANION

    async def embed(self, texts: Sequence[TextInput]) -> Array:
        """Return one float32 embedding row per text; see `TextEmbedder.embed`.

        An empty list makes no inference call and returns shape ``(0, dim)`` from the metadata.
        """
        batch = encode_texts(texts)
        client = await self._for_raw_inputs()
        info = await client.info()
        name, output = single_input(info), embedding_output(info)
        parts: list[Array] = []
        for part in batch_slices(len(batch), info.max_batch_size):
            chunk = batch[part]
            outputs = await client.infer({name: chunk}, outputs=[output])
            parts.append(parse_embeddings(outputs[output], len(chunk), client.model))
        return join_embeddings(parts, info, output)


class AsyncTextClassifier(AsyncRoutedClient):
    """Asyncio top-k text classifier; the same API as `TextClassifier`."""

    companion = TEXT_COMPANION

    async def classify(
        self, texts: Sequence[TextInput], top_k: int = 5
    ) -> list[list[Classification]]:
        """Return the top-k classes of each text; see `TextClassifier.classify`.

        An empty list returns ``[]`` without contacting the server.
        """
        check_top_k(top_k)
        batch = encode_texts(texts)
        if not len(batch):
            return []
        return await classify_batch_async(await self._for_raw_inputs(), batch, top_k, "texts")
