"""Unit tests for maas.clients.text: batches, resolution, empty lists and chunking, no server."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from maas.base.triton.endpoints import free_port
from maas.base.triton.names import TEXT_ENSEMBLE_SUFFIX
from maas.clients import (
    AsyncModelClient,
    AsyncTextClassifier,
    AsyncTextEmbedder,
    Classification,
    InferenceFailedError,
    InvalidInputError,
    ModelClient,
    ModelInfo,
    ModelNotFoundError,
    ServerUnavailableError,
    TensorInfo,
    TextClassifier,
    TextEmbedder,
)
from maas.clients.info import Array
from maas.clients.routing import TEXT_COMPANION
from maas.clients.text import (
    embedding_dim,
    embedding_output,
    encode_texts,
    join_embeddings,
    parse_embeddings,
)

EMBEDDINGS = (TensorInfo("embeddings", "FP32", (-1, 4)),)
TOKEN_INPUTS = (
    TensorInfo("input_ids", "INT64", (-1, -1)),
    TensorInfo("attention_mask", "INT64", (-1, -1)),
)
TEXT_INPUT = (TensorInfo("TEXT", "BYTES", (-1, 1)),)
CLASS_OUTPUTS = (
    TensorInfo("logits", "FP32", (-1, 3)),
    TensorInfo("probabilities", "FP32", (-1, 3)),
)

ENCODER = ModelInfo("enc", ("1",), TOKEN_INPUTS, EMBEDDINGS, max_batch_size=8)
ENCODER_TEXT = ModelInfo("enc_text", ("1",), TEXT_INPUT, EMBEDDINGS, max_batch_size=8)
CLASSIFIER = ModelInfo("cls", ("1",), TOKEN_INPUTS, CLASS_OUTPUTS, max_batch_size=4)
CLASSIFIER_TEXT = ModelInfo("cls_text", ("1",), TEXT_INPUT, CLASS_OUTPUTS, max_batch_size=4)
LABELS = ("negative", "neutral", "positive")


def unreachable_url() -> str:
    return f"127.0.0.1:{free_port()}"


# --- a stand-in for the server behind ModelClient.info() / infer -------------------------------


@dataclass
class Call:
    model: str
    input_name: str
    texts: list[bytes]
    outputs: tuple[str, ...]
    class_count: int


@dataclass
class FakeServer:
    """Answers `info` and `infer` for the clients: embeddings and classes derived from the text."""

    models: dict[str, ModelInfo] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def info(self, model: str) -> ModelInfo:
        if model not in self.models:
            message = f"model {model!r}: Request for unknown model: {model!r} is not found [404]"
            raise ModelNotFoundError(message, model=model, status="404")
        return self.models[model]

    def infer(
        self, model: str, inputs: Mapping[str, Array], outputs: Sequence[str], class_count: int
    ) -> dict[str, Array]:
        ((name, batch),) = inputs.items()
        texts = [bytes(item) for item in batch[:, 0]]
        self.calls.append(Call(model, name, texts, tuple(outputs), class_count))
        if class_count:
            return {outputs[0]: top_classes(texts, class_count)}
        return {outputs[0]: fake_embeddings(texts)}


def fake_embeddings(texts: Sequence[bytes]) -> Array:
    """Row i is [len(text), first byte, 0, 1], so order and content can be checked."""
    return np.array([[len(t), t[0] if t else 0, 0, 1] for t in texts], dtype=np.float32)


def top_classes(texts: Sequence[bytes], count: int) -> Array:
    """Triton-style "score:index:label" entries; the best class is len(text) % 3."""
    rows = []
    for text in texts:
        order = [(len(text) + step) % 3 for step in range(3)][:count]
        rows.append(
            [f"{0.9 - 0.1 * rank}:{i}:{LABELS[i]}".encode() for rank, i in enumerate(order)]
        )
    return np.array(rows, dtype=object)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    fake = FakeServer()

    def infer(
        self: Any,
        inputs: Mapping[str, Array],
        outputs: Sequence[str] | None = None,
        class_count: int = 0,
    ) -> dict[str, Array]:
        assert outputs is not None
        return fake.infer(self.model, inputs, outputs, class_count)

    async def async_info(self: Any) -> ModelInfo:
        return fake.info(self.model)

    async def async_infer(
        self: Any,
        inputs: Mapping[str, Array],
        outputs: Sequence[str] | None = None,
        class_count: int = 0,
    ) -> dict[str, Array]:
        return infer(self, inputs, outputs, class_count)

    monkeypatch.setattr(ModelClient, "info", lambda self: fake.info(self.model))
    monkeypatch.setattr(ModelClient, "infer", infer)
    monkeypatch.setattr(AsyncModelClient, "info", async_info)
    monkeypatch.setattr(AsyncModelClient, "infer", async_infer)
    return fake


# --- building the BYTES batch ------------------------------------------------------------------


def test_encode_texts_encodes_str_as_utf8_when_given_text() -> None:
    batch = encode_texts(["héllo", "✓", ""])
    assert batch.shape == (3, 1)
    assert batch.dtype == np.dtype(object)
    assert batch[:, 0].tolist() == [b"h\xc3\xa9llo", b"\xe2\x9c\x93", b""]


def test_encode_texts_passes_bytes_through_when_given_invalid_utf8() -> None:
    batch = encode_texts([b"\xff\xfe", "ok"])
    assert batch[:, 0].tolist() == [b"\xff\xfe", b"ok"]


@pytest.mark.parametrize(
    ("item", "type_name"), [(3, "int"), (None, "NoneType"), (bytearray(b"x"), "bytearray")]
)
def test_encode_texts_raises_invalid_naming_index_and_type_when_item_is_not_text(
    item: object, type_name: str
) -> None:
    with pytest.raises(
        InvalidInputError, match=rf"^text 2 is a {type_name}; expected str or bytes"
    ):
        encode_texts(["a", b"b", item])  # type: ignore[list-item]


@pytest.mark.parametrize("texts", ["hello", b"hello"])
def test_encode_texts_raises_invalid_when_given_one_text_instead_of_a_list(
    texts: Sequence[Any],
) -> None:
    with pytest.raises(InvalidInputError, match=r"got a single (str|bytes); wrap it in a list"):
        encode_texts(texts)


def test_encode_texts_gives_empty_batch_when_list_is_empty() -> None:
    assert encode_texts([]).shape == (0, 1)


# --- names, outputs and parsing ----------------------------------------------------------------


def test_text_companion_name_appends_text_suffix_when_naming_companion() -> None:
    assert (TEXT_ENSEMBLE_SUFFIX, TEXT_COMPANION.name("minilm")) == ("_text", "minilm_text")


def test_embedding_output_prefers_embeddings_when_model_has_several_outputs() -> None:
    info = ModelInfo(
        "m", ("1",), TEXT_INPUT, (TensorInfo("pooled", "FP32", (-1, 4)), *EMBEDDINGS), 8
    )
    assert embedding_output(info) == "embeddings"


def test_embedding_output_falls_back_to_first_output_when_no_embeddings() -> None:
    info = ModelInfo("m", ("1",), TEXT_INPUT, CLASS_OUTPUTS, 8)
    assert embedding_output(info) == "logits"


def test_embedding_dim_reads_last_dim_when_fixed_and_gives_zero_when_variable() -> None:
    variable = ModelInfo("m", ("1",), TEXT_INPUT, (TensorInfo("embeddings", "FP32", (-1, -1)),), 8)
    assert (embedding_dim(ENCODER, "embeddings"), embedding_dim(variable, "embeddings")) == (4, 0)


def test_parse_embeddings_gives_float32_rows_when_output_is_batched() -> None:
    raw = np.arange(8, dtype=np.float16)
    rows = parse_embeddings(raw, 2, "m")
    assert rows.dtype == np.float32
    assert rows.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_parse_embeddings_raises_failed_when_output_does_not_split_into_texts() -> None:
    with pytest.raises(InferenceFailedError, match=r"shape \[7\] does not split into 2 texts"):
        parse_embeddings(np.zeros(7, np.float32), 2, "m")


def test_join_embeddings_gives_empty_float32_of_declared_dim_when_no_parts() -> None:
    joined = join_embeddings([], ENCODER, "embeddings")
    assert (joined.shape, joined.dtype) == ((0, 4), np.dtype(np.float32))


def test_text_companion_missing_error_names_token_inputs_and_ensemble_when_built() -> None:
    cause = ModelNotFoundError("model 'enc_text': unknown", model="enc_text", status="404")
    error = TEXT_COMPANION.missing_error("enc", ENCODER, cause)
    assert "model 'enc' takes token ids (input_ids (INT64 [-1, -1]), attention_mask" in str(error)
    assert "no text ensemble 'enc_text'" in str(error)
    assert (error.model, error.status) == ("enc_text", "404")


# --- resolution --------------------------------------------------------------------------------


def test_text_embedder_sends_to_text_ensemble_when_model_takes_token_ids(
    server: FakeServer,
) -> None:
    server.models.update(enc=ENCODER, enc_text=ENCODER_TEXT)
    with TextEmbedder("enc", unreachable_url()) as embedder:
        embedder.embed(["hi"])
    assert [(c.model, c.input_name, c.outputs) for c in server.calls] == [
        ("enc_text", "TEXT", ("embeddings",))
    ]


def test_text_embedder_sends_to_named_model_when_its_input_is_bytes(server: FakeServer) -> None:
    server.models.update(enc_text=ENCODER_TEXT)
    with TextEmbedder("enc_text", unreachable_url()) as embedder:
        embedder.embed(["hi"])
    assert [c.model for c in server.calls] == ["enc_text"]


def test_text_embedder_raises_not_found_naming_ensemble_when_text_companion_is_missing(
    server: FakeServer,
) -> None:
    server.models.update(enc=ENCODER)
    with (
        TextEmbedder("enc", unreachable_url()) as embedder,
        pytest.raises(ModelNotFoundError, match=r"takes token ids.*no text ensemble 'enc_text'"),
    ):
        embedder.embed(["hi"])
    assert server.calls == []


def test_text_embedder_raises_servers_not_found_when_model_is_unknown(server: FakeServer) -> None:
    with (
        TextEmbedder("nosuch", unreachable_url()) as embedder,
        pytest.raises(ModelNotFoundError, match="'nosuch' is not found") as caught,
    ):
        embedder.embed(["hi"])
    assert caught.value.model == "nosuch"


def test_text_classifier_raises_not_found_naming_ensemble_when_text_companion_is_missing(
    server: FakeServer,
) -> None:
    server.models.update(cls=CLASSIFIER)
    with (
        TextClassifier("cls", unreachable_url(), "grpc") as classifier,
        pytest.raises(ModelNotFoundError, match="no text ensemble 'cls_text'"),
    ):
        classifier.classify(["hi"])


def test_async_text_embedder_raises_not_found_naming_ensemble_when_text_companion_is_missing(
    server: FakeServer,
) -> None:
    server.models.update(enc=ENCODER)

    async def embed() -> None:
        async with AsyncTextEmbedder("enc", unreachable_url(), "grpc") as embedder:
            await embedder.embed(["hi"])

    with pytest.raises(ModelNotFoundError, match=r"takes token ids.*no text ensemble 'enc_text'"):
        asyncio.run(embed())


# --- empty lists -------------------------------------------------------------------------------


def test_text_embedder_returns_empty_rows_of_declared_dim_without_inference_when_list_is_empty(
    server: FakeServer,
) -> None:
    server.models.update(enc=ENCODER, enc_text=ENCODER_TEXT)
    with TextEmbedder("enc", unreachable_url()) as embedder:
        result = embedder.embed([])
    assert (result.shape, result.dtype) == ((0, 4), np.dtype(np.float32))
    assert server.calls == []


def test_async_text_embedder_returns_empty_rows_without_inference_when_list_is_empty(
    server: FakeServer,
) -> None:
    server.models.update(enc=ENCODER, enc_text=ENCODER_TEXT)

    async def embed() -> Array:
        async with AsyncTextEmbedder("enc", unreachable_url()) as embedder:
            return await embedder.embed([])

    assert asyncio.run(embed()).shape == (0, 4)
    assert server.calls == []


def test_text_embedder_raises_unavailable_when_list_is_empty_and_server_is_down() -> None:
    # The embedding size comes from the model metadata, so even an empty list asks the server.
    with (
        TextEmbedder("enc", unreachable_url(), timeout_s=5) as embedder,
        pytest.raises(ServerUnavailableError),
    ):
        embedder.embed([])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_text_classifier_returns_empty_list_without_a_server_when_list_is_empty(
    protocol: Any,
) -> None:
    with TextClassifier("cls", unreachable_url(), protocol) as classifier:
        assert classifier.classify([]) == []


def test_async_text_classifier_returns_empty_list_without_a_server_when_list_is_empty() -> None:
    async def classify() -> list[list[Classification]]:
        async with AsyncTextClassifier("cls", unreachable_url(), "grpc") as classifier:
            return await classifier.classify([])

    assert asyncio.run(classify()) == []


def test_text_embedder_raises_invalid_before_contacting_server_when_item_is_not_text() -> None:
    with (
        TextEmbedder("enc", unreachable_url()) as embedder,
        pytest.raises(InvalidInputError, match="text 1 is a int"),
    ):
        embedder.embed(["a", 1])  # type: ignore[list-item]


def test_text_classifier_raises_invalid_when_top_k_is_below_one() -> None:
    with (
        TextClassifier("cls", unreachable_url()) as classifier,
        pytest.raises(InvalidInputError, match="top_k must be >= 1, got 0"),
    ):
        classifier.classify(["a"], top_k=0)


# --- chunking ----------------------------------------------------------------------------------

TWENTY = ["x" * length for length in range(1, 21)]


def test_text_embedder_splits_by_max_batch_size_and_keeps_order_when_list_is_long(
    server: FakeServer,
) -> None:
    server.models.update(enc=ENCODER, enc_text=ENCODER_TEXT)
    with TextEmbedder("enc", unreachable_url()) as embedder:
        result = embedder.embed(TWENTY)
    assert [len(c.texts) for c in server.calls] == [8, 8, 4]
    assert (result.shape, result.dtype) == ((20, 4), np.dtype(np.float32))
    assert result[:, 0].tolist() == list(range(1, 21))


def test_async_text_embedder_splits_by_max_batch_size_and_keeps_order_when_list_is_long(
    server: FakeServer,
) -> None:
    server.models.update(enc=ENCODER, enc_text=ENCODER_TEXT)

    async def embed() -> Array:
        async with AsyncTextEmbedder("enc", unreachable_url(), "grpc") as embedder:
            return await embedder.embed(TWENTY)

    result = asyncio.run(embed())
    assert [len(c.texts) for c in server.calls] == [8, 8, 4]
    assert result[:, 0].tolist() == list(range(1, 21))


def test_text_classifier_splits_by_max_batch_size_and_parses_top_k_when_list_is_long(
    server: FakeServer,
) -> None:
    server.models.update(cls=CLASSIFIER, cls_text=CLASSIFIER_TEXT)
    texts = ["a", "bb", "ccc", "é", "", "ffffff", "g", "hh", "iii", "j"]
    with TextClassifier("cls", unreachable_url()) as classifier:
        result = classifier.classify(texts, top_k=2)
    assert [(c.model, len(c.texts), c.outputs, c.class_count) for c in server.calls] == [
        ("cls_text", 4, ("probabilities",), 2),
        ("cls_text", 4, ("probabilities",), 2),
        ("cls_text", 2, ("probabilities",), 2),
    ]
    # "é" is two UTF-8 bytes, so its best class is 2 % 3.
    assert [row[0].label for row in result] == [LABELS[len(t.encode()) % 3] for t in texts]
    assert result[0] == [Classification("neutral", 0.9, 1), Classification("positive", 0.8, 2)]


def test_async_text_classifier_splits_by_max_batch_size_and_parses_top_k_when_list_is_long(
    server: FakeServer,
) -> None:
    server.models.update(cls=CLASSIFIER, cls_text=CLASSIFIER_TEXT)
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]

    async def classify() -> list[list[Classification]]:
        async with AsyncTextClassifier("cls", unreachable_url()) as classifier:
            return await classifier.classify(texts, top_k=1)

    result = asyncio.run(classify())
    assert [len(c.texts) for c in server.calls] == [4, 1]
    assert [[c.label for c in row] for row in result] == [
        ["neutral"],
        ["positive"],
        ["negative"],
        ["neutral"],
        ["positive"],
    ]
