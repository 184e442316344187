"""Bad text input gets a clear error or documented behaviour, over both protocols."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from maas.base.sentences import LONG_DOCUMENT
from maas.clients import InvalidInputError, Protocol, TextEmbedder
from maas.export.verify import cosine_similarities
from tests.conftest import RunningServer

INVALID = {"http": "400", "grpc": "StatusCode.INVALID_ARGUMENT"}


@pytest.fixture
def embedder(server: RunningServer, protocol: Protocol) -> Any:
    # The fp32 path, so results compare exactly; tokenizer and ensemble are the same for all.
    with TextEmbedder("minilm_fp32", url=server.url(protocol), protocol=protocol) as client:
        yield client
    assert server.is_ready(), "the server must stay ready after bad input"


def test_empty_list_returns_no_rows_without_error(embedder: TextEmbedder) -> None:
    empty = embedder.embed([])
    assert empty.shape == (0, 384)
    assert empty.dtype == np.float32


def test_empty_string_embeds_like_the_reference_does(embedder: TextEmbedder) -> None:
    from sentence_transformers import SentenceTransformer

    from maas.export.models.minilm import packaged_model_dir

    reference = SentenceTransformer(str(packaged_model_dir()), device="cpu").encode([""])
    served = embedder.embed(["", "not empty"])
    assert cosine_similarities(np.asarray(reference), served[:1]).min() >= 0.9999


def test_non_utf8_bytes_are_rejected_naming_the_item(embedder: TextEmbedder) -> None:
    with pytest.raises(InvalidInputError, match=r"TEXT\[1\] is not valid UTF-8 \(byte 0xff"):
        embedder.embed([b"fine", b"\xff\xfe broken"])


def test_text_over_max_length_is_truncated_so_extra_words_change_nothing(
    embedder: TextEmbedder,
) -> None:
    long, longer = LONG_DOCUMENT * 2, LONG_DOCUMENT * 2 + " and a tail that lies past the limit"
    served = embedder.embed([long, longer])
    assert cosine_similarities(served[:1], served[1:]).min() >= 0.999999


def test_text_over_max_length_is_rejected_when_truncation_is_off(
    server: RunningServer, protocol: Protocol
) -> None:
    with TextEmbedder("tiny_bert_strict", url=server.url(protocol), protocol=protocol) as strict:
        assert strict.embed(["short text is fine"]).shape == (1, 32)
        with pytest.raises(
            InvalidInputError, match=r"over the maximum of 128, and truncation is off"
        ):
            strict.embed([LONG_DOCUMENT])
    assert server.is_ready()


def test_server_rejects_wrong_dtype_for_text_input(
    server: RunningServer, protocol: Protocol
) -> None:
    module = httpclient if protocol == "http" else grpcclient
    client = module.InferenceServerClient(server.url(protocol))
    tensor = module.InferInput("TEXT", [1, 1], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 1), np.float32))
    try:
        with pytest.raises(InferenceServerException) as error:
            client.infer("minilm_fp32_text", [tensor])
    finally:
        client.close()
    assert error.value.status() == INVALID[protocol]
    expected = "datatype FP32; expected BYTES" if protocol == "http" else "expects 'BYTES'"
    assert expected in str(error.value.message())  # the gateway answers HTTP, Triton gRPC
    assert server.is_ready()


def test_client_refuses_a_bare_string_instead_of_a_list(embedder: TextEmbedder) -> None:
    with pytest.raises(InvalidInputError, match="wrap it in a list"):
        embedder.embed("one text")  # type: ignore[arg-type]
