"""Text models on Triton: raw strings in, embeddings or top-k labels out.

A text model ``NAME`` takes token ids; its companion ensemble ``NAME_text`` takes the raw strings
(``TEXT``, BYTES ``[n, 1]``) and tokenizes them on the server. The clients send to the named
model when it takes BYTES itself, else to the ensemble.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar

import numpy as np

from maas.conventions import TEXT_ENSEMBLE_SUFFIX

from .common import (
    Classification,
    batch_slices,
    check_top_k,
    classified_output,
    named_or_first_output,
    parse_top_k,
    single_input,
    split_rows,
    takes_bytes_input,
)
from .core import Array, AsyncModelClient, ModelClient, ModelInfo, Protocol
from .errors import InvalidInputError, ModelNotFoundError

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


def text_ensemble_name(model: str) -> str:
    """Name of the ensemble that takes raw strings for a token-id model."""
    return model + TEXT_ENSEMBLE_SUFFIX


def missing_text_ensemble_error(
    model: str, info: ModelInfo, cause: ModelNotFoundError
) -> ModelNotFoundError:
    """Explain that raw text needs the text ensemble, which the server does not have."""
    inputs = ", ".join(tensor.describe() for tensor in info.inputs)
    return ModelNotFoundError(
        f"model {model!r} takes token ids ({inputs}), and the server has no text ensemble "
        f"{text_ensemble_name(model)!r} to tokenize raw text; serve the ensemble, or send "
        f"token ids with ModelClient ({cause})",
        model=text_ensemble_name(model),
        status=cause.status,
    )


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


_Sync = TypeVar("_Sync", bound="_TextModel")
_Async = TypeVar("_Async", bound="_AsyncTextModel")


class _TextModel:
    """Connections to a text model and its ``_text`` ensemble, and the choice between them."""

    def __init__(
        self,
        model: str,
        url: str | None = None,
        protocol: Protocol = "http",
        timeout_s: float = 30.0,
        version: str = "",
    ) -> None:
        self.model = model
        options: dict[str, Any] = {
            "url": url,
            "protocol": protocol,
            "timeout_s": timeout_s,
            "version": version,
        }
        # Neither connects before its first call, so making both up front costs nothing.
        self._named = ModelClient(model, **options)
        self._ensemble = ModelClient(text_ensemble_name(model), **options)

    def _resolved(self) -> ModelClient:
        """Return the named model if it takes BYTES, else its text ensemble."""
        if takes_bytes_input(self._named.info):
            return self._named
        try:
            _ = self._ensemble.info  # fetch now to report a missing ensemble clearly
        except ModelNotFoundError as exc:
            raise missing_text_ensemble_error(self.model, self._named.info, exc) from exc
        return self._ensemble

    def close(self) -> None:
        """Close the connections to the server."""
        try:
            self._named.close()
        finally:
            self._ensemble.close()

    def __enter__(self: _Sync) -> _Sync:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _AsyncTextModel:
    """Asyncio version of `_TextModel`."""

    def __init__(
        self,
        model: str,
        url: str | None = None,
        protocol: Protocol = "http",
        timeout_s: float = 30.0,
        version: str = "",
    ) -> None:
        self.model = model
        options: dict[str, Any] = {
            "url": url,
            "protocol": protocol,
            "timeout_s": timeout_s,
            "version": version,
        }
        # Both connect lazily, so making them here costs nothing and leaves no state that
        # concurrent calls could race to set.
        self._named = AsyncModelClient(model, **options)
        self._ensemble = AsyncModelClient(text_ensemble_name(model), **options)

    async def _resolved(self) -> AsyncModelClient:
        """Return the named model if it takes BYTES, else its text ensemble."""
        named = await self._named.info()
        if takes_bytes_input(named):
            return self._named
        try:
            await self._ensemble.info()  # fetch now to report a missing ensemble clearly
        except ModelNotFoundError as exc:
            raise missing_text_ensemble_error(self.model, named, exc) from exc
        return self._ensemble

    async def close(self) -> None:
        """Close the connections that were opened."""
        try:
            await self._named.close()
        finally:
            await self._ensemble.close()

    async def __aenter__(self: _Async) -> _Async:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class TextEmbedder(_TextModel):
    """Blocking text embedder for a model served by Triton (or its ``_text`` ensemble).

    Like `ModelClient`, one instance serves one thread at a time.
    """

    def embed(self, texts: Sequence[TextInput]) -> Array:
        """Return one float32 embedding row per text, shape ``(n, dim)``, in the order given.

        str is sent as UTF-8, bytes as they are. Batches larger than the model's
        ``max_batch_size`` are split into several calls. An empty list makes no inference call
        and returns shape ``(0, dim)``, ``dim`` read from the model metadata (0 if variable),
        so it still needs the server.
        """
        batch = encode_texts(texts)
        client = self._resolved()
        info = client.info
        name, output = single_input(info), embedding_output(info)
        parts: list[Array] = []
        for part in batch_slices(len(batch), info.max_batch_size):
            chunk = batch[part]
            raw = client.infer({name: chunk}, outputs=[output])[output]
            parts.append(parse_embeddings(raw, len(chunk), client.model))
        return join_embeddings(parts, info, output)


class TextClassifier(_TextModel):
    """Blocking top-k text classifier for a model served by Triton (or its ``_text`` ensemble).

    Like `ModelClient`, one instance serves one thread at a time.
    """

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
        client = self._resolved()
        info = client.info
        name, output = single_input(info), classified_output(info)
        results: list[list[Classification]] = []
        for part in batch_slices(len(batch), info.max_batch_size):
            chunk = batch[part]
            raw = client.infer({name: chunk}, outputs=[output], class_count=top_k)[output]
            results.extend(parse_top_k(raw, len(chunk), client.model, items="texts"))
        return results


class AsyncTextEmbedder(_AsyncTextModel):
    """Asyncio text embedder; the same API as `TextEmbedder`."""

    async def embed(self, texts: Sequence[TextInput]) -> Array:
        """Return one float32 embedding row per text; see `TextEmbedder.embed`.

        An empty list makes no inference call and returns shape ``(0, dim)`` from the metadata.
        """
        batch = encode_texts(texts)
        client = await self._resolved()
        info = await client.info()
        name, output = single_input(info), embedding_output(info)
        parts: list[Array] = []
        for part in batch_slices(len(batch), info.max_batch_size):
            chunk = batch[part]
            outputs = await client.infer({name: chunk}, outputs=[output])
            parts.append(parse_embeddings(outputs[output], len(chunk), client.model))
        return join_embeddings(parts, info, output)


class AsyncTextClassifier(_AsyncTextModel):
    """Asyncio top-k text classifier; the same API as `TextClassifier`."""

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
        client = await self._resolved()
        info = await client.info()
        name, output = single_input(info), classified_output(info)
        results: list[list[Classification]] = []
        for part in batch_slices(len(batch), info.max_batch_size):
            chunk = batch[part]
            outputs = await client.infer({name: chunk}, outputs=[output], class_count=top_k)
            results.extend(parse_top_k(outputs[output], len(chunk), client.model, items="texts"))
        return results
