"""Bad requests get a clear 400 / INVALID_ARGUMENT naming what was expected; the server stays up."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from maas.clients import (
    ImageClassifier,
    InvalidInputError,
    ModelClient,
    ModelNotFoundError,
    Protocol,
)
from tests.conftest import RunningServer

DIGITS_MAX_BATCH = 64
INVALID = {"http": "400", "grpc": "StatusCode.INVALID_ARGUMENT"}


@pytest.fixture
def raw_client(server: RunningServer, protocol: Protocol) -> Iterator[Any]:
    """tritonclient itself, to send what maas's own client would refuse before sending."""
    module = httpclient if protocol == "http" else grpcclient
    client = module.InferenceServerClient(server.url(protocol))
    yield client
    client.close()
    assert server.is_ready(), "the server must stay ready after a bad request"


def send_raw(
    client: Any, protocol: Protocol, model: str, name: str, array: np.ndarray, datatype: str
) -> None:
    module = httpclient if protocol == "http" else grpcclient
    tensor = module.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    client.infer(model, [tensor])


def expect_invalid(
    protocol: Protocol, error: pytest.ExceptionInfo[InferenceServerException], *fragments: str
) -> None:
    assert error.value.status() == INVALID[protocol], error.value
    for fragment in fragments:
        assert fragment in str(error.value.message()), error.value.message()


# Over HTTP the gateway answers (naming what was expected); over gRPC Triton itself does.
def by_protocol(protocol: Protocol, http: str, grpc: str) -> str:
    return http if protocol == "http" else grpc


def test_server_rejects_wrong_input_name(raw_client: Any, protocol: Protocol) -> None:
    # Triton names the unexpected input, not the expected one; maas's client adds that (below).
    with pytest.raises(InferenceServerException) as error:
        send_raw(
            raw_client, protocol, "digits_cnn", "image", np.zeros((1, 1, 8, 8), np.float32), "FP32"
        )
    expected = by_protocol(
        protocol, "no input 'image'; expected: pixels", "unexpected inference input 'image'"
    )
    expect_invalid(protocol, error, expected, "digits_cnn")


def test_server_rejects_wrong_shape_naming_the_expected_dims(
    raw_client: Any, protocol: Protocol
) -> None:
    with pytest.raises(InferenceServerException) as error:
        send_raw(
            raw_client, protocol, "digits_cnn", "pixels", np.zeros((1, 1, 9, 9), np.float32), "FP32"
        )
    expect_invalid(
        protocol,
        error,
        by_protocol(protocol, "has shape [1, 1, 9, 9]", "unexpected shape for input 'pixels'"),
        by_protocol(protocol, "expected [[1-64], 1, 8, 8]", "[-1,1,8,8]"),
    )


def test_server_rejects_wrong_dtype_naming_the_expected_type(
    raw_client: Any, protocol: Protocol
) -> None:
    with pytest.raises(InferenceServerException) as error:
        send_raw(
            raw_client, protocol, "digits_cnn", "pixels", np.zeros((1, 1, 8, 8), np.int32), "INT32"
        )
    expect_invalid(
        protocol,
        error,
        by_protocol(protocol, "datatype INT32", "'pixels' data-type is 'INT32'"),
        by_protocol(protocol, "expected FP32", "expects 'FP32'"),
    )


def test_server_rejects_batch_over_max_batch_size(raw_client: Any, protocol: Protocol) -> None:
    too_many = np.zeros((DIGITS_MAX_BATCH + 1, 1, 8, 8), np.float32)
    with pytest.raises(InferenceServerException) as error:
        send_raw(raw_client, protocol, "digits_cnn", "pixels", too_many, "FP32")
    expect_invalid(
        protocol,
        error,
        by_protocol(
            protocol,
            f"batch of 65 is outside 1-{DIGITS_MAX_BATCH} (max_batch_size)",
            f"batch-size must be <= {DIGITS_MAX_BATCH}",
        ),
    )


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"\x89PNG\r\n\x1a\n truncated", "is not a decodable image"),
        (b"", "is empty"),
        (b"plain text", "JPEG or PNG"),
    ],
)
def test_ensemble_rejects_bytes_that_are_not_an_image(
    raw_client: Any, protocol: Protocol, payload: bytes, fragment: str
) -> None:
    images = np.array([[payload]], dtype=object)
    with pytest.raises(InferenceServerException) as error:
        send_raw(raw_client, protocol, "digits_cnn_image", "IMAGE", images, "BYTES")
    expect_invalid(protocol, error, "IMAGE[0]", fragment)


def test_server_reports_unknown_model_clearly(raw_client: Any, protocol: Protocol) -> None:
    with pytest.raises(InferenceServerException) as error:
        send_raw(
            raw_client,
            protocol,
            "no_such_model",
            "pixels",
            np.zeros((1, 1, 8, 8), np.float32),
            "FP32",
        )
    assert error.value.status() == {"http": "404", "grpc": "StatusCode.NOT_FOUND"}[protocol]
    assert "no_such_model" in str(error.value.message())


def test_client_maps_unknown_model_to_model_not_found(
    server: RunningServer, protocol: Protocol
) -> None:
    with (
        ModelClient("no_such_model", url=server.url(protocol), protocol=protocol) as client,
        pytest.raises(ModelNotFoundError, match="no_such_model"),
    ):
        client.infer({"pixels": np.zeros((1, 1, 8, 8), np.float32)})
    assert server.is_ready()


def test_client_refuses_wrong_input_name_before_sending(
    server: RunningServer, protocol: Protocol
) -> None:
    expected = r"no input\(s\) 'image'; expected inputs: pixels"
    with (
        ModelClient("digits_cnn", url=server.url(protocol), protocol=protocol) as client,
        pytest.raises(InvalidInputError, match=expected),
    ):
        client.infer({"image": np.zeros((1, 1, 8, 8), np.float32)})


def test_client_refuses_wrong_dtype_naming_the_expected_one(
    server: RunningServer, protocol: Protocol
) -> None:
    with (
        ModelClient("digits_cnn", url=server.url(protocol), protocol=protocol) as client,
        pytest.raises(InvalidInputError, match=r"expected numpy float32 \(FP32\)"),
    ):
        client.infer({"pixels": np.zeros((1, 1, 8, 8), np.float64)})


def test_classifier_maps_corrupt_image_to_invalid_input(
    server: RunningServer, protocol: Protocol
) -> None:
    with (
        ImageClassifier("digits_cnn", url=server.url(protocol), protocol=protocol) as classifier,
        pytest.raises(InvalidInputError, match="not a decodable image"),
    ):
        classifier.classify([b"GIF89a but not really"])
    assert server.is_ready()
