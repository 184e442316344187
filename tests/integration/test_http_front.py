"""The public HTTP endpoint survives the requests that kill Triton's own HTTP server.

Each request below crashed or confused tritonserver 2.51 when sent to its HTTP port directly
(a declared shape far over max_batch_size: std::bad_alloc; a JSON document of 4 MiB: SIGSEGV;
malformed JSON or a data/shape mismatch: 500). Through `maas serve`'s front each gets a clear
4xx, and the server keeps answering valid requests with the same results.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator

import numpy as np
import pytest

from maas.clients import ModelClient
from tests.conftest import Exported, RunningServer

PIXELS = "pixel_values"
RESNET_SHAPE = [3, 224, 224]
MiB = 1024 * 1024


def post(
    url: str, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """POST body; the status and the JSON error message (or the raw body)."""
    host, port = url.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("POST", path, body=body, headers=headers or {})
        reply = connection.getresponse()
        text = reply.read().decode(errors="replace")
    finally:
        connection.close()
    try:
        return reply.status, str(json.loads(text).get("error", text))
    except (json.JSONDecodeError, AttributeError):
        return reply.status, text


def infer_json(url: str, model: str, inputs: list[dict[str, object]]) -> tuple[int, str]:
    return post(url, f"/v2/models/{model}/infer", json.dumps({"inputs": inputs}).encode())


def resnet_input(shape: list[int], data: list[object]) -> dict[str, object]:
    return {"name": PIXELS, "datatype": "FP32", "shape": shape, "data": data}


EMPTY = resnet_input([1, *RESNET_SHAPE], [])


@pytest.fixture
def reference(server: RunningServer, exported: Exported) -> Iterator[np.ndarray]:
    """digits_cnn's answer before the bad request; the same answer is expected after it."""
    pixels = exported.results["digits_cnn"].built.eval_inputs["pixels"][:4]
    with ModelClient("digits_cnn", url=server.http_url) as client:
        before = client.infer({"pixels": pixels})["probabilities"]
    yield before
    assert server.is_ready(), "the server must stay ready"
    with ModelClient("digits_cnn", url=server.http_url) as client:
        after = client.infer({"pixels": pixels})["probabilities"]
    np.testing.assert_array_equal(after, before)


def test_a_declared_shape_far_over_max_batch_size_is_refused(
    server: RunningServer, reference: np.ndarray
) -> None:
    huge = resnet_input([100000, *RESNET_SHAPE], [1.0])
    status, message = infer_json(server.http_url, "resnet50", [huge])
    assert status == 400
    assert "batch of 100000 is outside 1-16 (max_batch_size)" in message, message


def test_a_70_mb_body_is_refused_at_the_size_limit(
    server: RunningServer, reference: np.ndarray
) -> None:
    status, message = post(server.http_url, "/v2/models/resnet50/infer", b" " * (70 * MiB))
    assert status == 413
    assert "over the limit of" in message, message


def test_a_json_document_of_4_mib_is_refused_with_the_way_out(
    server: RunningServer, reference: np.ndarray
) -> None:
    # A valid batch of two ResNet images written as JSON numbers: about 6 MB.
    data = np.random.default_rng(0).standard_normal(2 * 3 * 224 * 224).tolist()
    batch = resnet_input([2, *RESNET_SHAPE], data)
    status, message = infer_json(server.http_url, "resnet50", [batch])
    assert status == 413
    assert "send tensors as binary data" in message, message


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"inputs": [', "not valid JSON"),
        (b"\xff\xfe not utf-8", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"inputs": []}', "non-empty 'inputs' array; model 'resnet50' expects: pixel_values"),
    ],
)
def test_malformed_json_gets_400(
    server: RunningServer, reference: np.ndarray, body: bytes, fragment: str
) -> None:
    status, message = post(server.http_url, "/v2/models/resnet50/infer", body)
    assert status == 400
    assert fragment in message, message


@pytest.mark.parametrize(
    ("tensor", "fragment"),
    [
        (resnet_input([1, *RESNET_SHAPE], [1.0]), "'data' holds 1 values; its shape needs 150528"),
        (resnet_input([1, 3, 224], [1.0]), "rank 3; expected [[1-16], 3, 224, 224]"),
        (resnet_input([1, 3, 225, 224], [1.0]), "expected [[1-16], 3, 224, 224]"),
        (resnet_input([1, -3, 224, 224], [1.0]), "non-negative integers"),
        ({**EMPTY, "datatype": "FP64"}, "datatype FP64; expected FP32"),
        ({**EMPTY, "name": "image"}, "no input 'image'; expected: pixel_values"),
        (resnet_input([1, *RESNET_SHAPE], ["x"]), "holds a string where a number was expected"),
    ],
)
def test_inputs_that_disagree_with_the_config_get_400_naming_what_was_expected(
    server: RunningServer, reference: np.ndarray, tensor: dict[str, object], fragment: str
) -> None:
    status, message = infer_json(server.http_url, "resnet50", [tensor])
    assert status == 400
    assert fragment in message, message


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([0.5, 1], "holds the number 0.5 where an integer in INT64's range was expected"),
        ([True, 1], "holds a boolean where an integer in INT64's range was expected"),
    ],
)
def test_json_values_must_fit_the_datatype(
    server: RunningServer, reference: np.ndarray, data: list[object], fragment: str
) -> None:
    tensor: dict[str, object] = {
        "name": "input_ids",
        "datatype": "INT64",
        "shape": [1, 2],
        "data": data,
    }
    mask: dict[str, object] = {
        "name": "attention_mask",
        "datatype": "INT64",
        "shape": [1, 2],
        "data": [1, 1],
    }
    status, message = infer_json(server.http_url, "minilm", [tensor, mask])
    assert status == 400
    assert fragment in message, message


def test_parameters_must_be_objects(server: RunningServer, reference: np.ndarray) -> None:
    body = {"inputs": [{**EMPTY, "data": [0.0] * 150528}], "parameters": []}
    status, message = post(server.http_url, "/v2/models/resnet50/infer", json.dumps(body).encode())
    assert status == 400 and "'parameters' must be a JSON object" in message, message


def test_binary_sizes_must_match_the_declared_shape(
    server: RunningServer, reference: np.ndarray
) -> None:
    header = json.dumps(
        {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 1, 8, 8],
                     "parameters": {"binary_data_size": 256}}]}
    ).encode()  # fmt: skip
    path = "/v2/models/digits_cnn/infer"
    for payload, declared, fragment in (
        (bytes(255), len(header), "declare 256 bytes of binary data; the body carries 255"),
        (bytes(256), len(header) + 500, "Inference-Header-Content-Length must be an integer"),
        (bytes(256), -1, "Inference-Header-Content-Length must be an integer"),
    ):
        lengths = {"Inference-Header-Content-Length": str(declared)}
        status, message = post(server.http_url, path, header + payload, lengths)
        assert status == 400, message
        assert fragment in message, message


def test_unknown_models_and_endpoints_get_404(server: RunningServer, reference: np.ndarray) -> None:
    status, message = infer_json(server.http_url, "no_such_model", [])
    assert status == 404 and "unknown model: 'no_such_model'" in message, message
    status, message = infer_json(server.http_url, "..%2f..%2fetc", [])
    assert status == 400 and "encoded slashes" in message, message
    status, message = post(server.http_url, "/v2/models/x/../resnet50/generate", b"{}")
    assert status == 404 and "no such endpoint" in message, message
    status, message = post(server.http_url, "/v2/models/resnet50/extra/generate", b"{}")
    assert status == 404 and "no such endpoint" in message, message
    # generate is open (for generation models); a model that is not one says what it lacks.
    status, message = post(server.http_url, "/v2/models/resnet50/generate", b"{}")
    assert status == 400 and "missing required input(s) ['pixel_values']" in message, message


def test_server_wide_settings_are_not_public(server: RunningServer, reference: np.ndarray) -> None:
    status, message = post(server.http_url, "/v2/logging", b'{"log_verbose_level": 1}')
    assert status == 403 and "not available on the public endpoint" in message, message
    status, message = post(server.http_url, "/v2/repository/models/resnet50/unload", b"")
    assert status == 403 and "model control is off" in message, message
    status, message = post(server.http_url, "/v2/models/resnet50%00/infer", b"{}")
    assert status == 400 and "NUL bytes are not allowed" in message, message  # the gateway's check


def test_a_large_binary_request_passes_the_checks_at_once(
    server: RunningServer, exported: Exported, reference: np.ndarray
) -> None:
    # 16 photos as binary tensors (9.6 MB) are larger than the gateway's buffer: it checks the
    # JSON header from the first bytes and streams the rest, without waiting for a full buffer.
    crops = exported.results["resnet50"].built.eval_inputs[PIXELS]
    photos = np.concatenate([crops] * (16 // len(crops) + 1))[:16]
    began = time.monotonic()
    with ModelClient("resnet50", url=server.http_url) as client:
        logits = client.infer({PIXELS: photos}, outputs=["logits"])["logits"]
    assert time.monotonic() - began < 10.0
    assert logits.shape == (16, 1000)
