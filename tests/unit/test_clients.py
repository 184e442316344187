"""Unit tests for maas.clients: parsing, error mapping and validation, no server needed."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import gevent
import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from geventhttpclient.response import HTTPConnectionClosed
from tritonclient.utils import InferenceServerException

from maas.base.errors import MaasError
from maas.base.triton.endpoints import free_port
from maas.clients import (
    AsyncImageClassifier,
    AsyncModelClient,
    Classification,
    ClientError,
    ImageClassifier,
    InferenceFailedError,
    InferenceTimeoutError,
    InvalidInputError,
    ModelClient,
    ModelInfo,
    ModelNotFoundError,
    ServerUnavailableError,
    TensorInfo,
    default_url,
    map_error,
    parse_classification,
)
from maas.clients.checks import (
    build_infer_inputs,
    select_outputs,
    triton_datatype,
    validate_inputs,
)
from maas.clients.image import (
    batch_slices,
    classified_output,
    parse_top_k,
    prepare_images,
    takes_encoded_images,
)
from maas.clients.info import parse_model_info
from maas.clients.routing import IMAGE_COMPANION
from maas.clients.transport import ClientOptions, check_protocol, resolve_url

# Payloads as tritonserver 2.51 returned them for a python-backend classifier.
HTTP_METADATA: dict[str, Any] = {
    "name": "tiny_cls",
    "versions": ["1"],
    "platform": "python",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}],
}
HTTP_CONFIG: dict[str, Any] = {
    "name": "tiny_cls",
    "platform": "",
    "backend": "python",
    "max_batch_size": 4,
    "input": [
        {
            "name": "input",
            "data_type": "TYPE_FP32",
            "format": "FORMAT_NONE",
            "dims": [4],
            "optional": False,
        }
    ],
    "output": [
        {
            "name": "probabilities",
            "data_type": "TYPE_FP32",
            "dims": [3],
            "label_filename": "labels.txt",
        }
    ],
}
# gRPC with as_json=True: int64 as strings, config wrapped, zero-valued fields left out.
GRPC_METADATA: dict[str, Any] = {
    "name": "slow",
    "versions": ["1"],
    "platform": "python",
    "inputs": [
        {"name": "x", "datatype": "FP32", "shape": ["-1"]},
        {"name": "mask", "datatype": "BOOL", "shape": ["-1"]},
    ],
    "outputs": [
        {"name": "y", "datatype": "FP32", "shape": ["-1"]},
        {"name": "z", "datatype": "INT64", "shape": ["1"]},
    ],
}
GRPC_CONFIG: dict[str, Any] = {
    "config": {
        "name": "slow",
        "input": [
            {"name": "x", "data_type": "TYPE_FP32", "dims": ["-1"]},
            {"name": "mask", "data_type": "TYPE_BOOL", "dims": ["-1"], "optional": True},
        ],
        "output": [
            {"name": "y", "data_type": "TYPE_FP32", "dims": ["-1"]},
            {"name": "z", "data_type": "TYPE_INT64", "dims": ["1"]},
        ],
        "backend": "python",
    }
}

TINY_INFO = ModelInfo(
    name="tiny_cls",
    versions=("1",),
    inputs=(TensorInfo("input", "FP32", (-1, 4)),),
    outputs=(TensorInfo("probabilities", "FP32", (-1, 3)),),
    max_batch_size=4,
)
IMAGE_INFO = ModelInfo(
    name="tiny_cls_image",
    versions=("1",),
    inputs=(TensorInfo("image", "BYTES", (-1, 1)),),
    outputs=(TensorInfo("probabilities", "FP32", (-1, 3)),),
    max_batch_size=4,
)


# --- classification parsing ------------------------------------------------------------------


def test_parse_classification_keeps_colons_when_label_contains_them() -> None:
    assert parse_classification(b"0.114195:1:dog:husky") == Classification("dog:husky", 0.114195, 1)


def test_parse_classification_gives_empty_label_when_label_is_absent() -> None:
    assert parse_classification("0.5:7") == Classification("", 0.5, 7)


def test_parse_classification_accepts_str_when_given_text() -> None:
    assert parse_classification("0.843795:0:cat") == Classification("cat", 0.843795, 0)


def test_parse_classification_raises_failed_when_entry_is_malformed() -> None:
    with pytest.raises(InferenceFailedError, match="score:index"):
        parse_classification(b"cat")


def test_parse_top_k_gives_one_list_per_image_when_output_is_batched() -> None:
    raw = np.array([[b"0.9:0:cat", b"0.1:1:dog"], [b"0.8:2:bird", b"0.2:0:cat"]], dtype=object)
    result = parse_top_k(raw, 2, "m")
    assert [[c.label for c in row] for row in result] == [["cat", "dog"], ["bird", "cat"]]


def test_parse_top_k_raises_failed_when_output_does_not_split_into_images() -> None:
    raw = np.array([b"0.9:0:cat", b"0.1:1:dog", b"0.1:2:bird"], dtype=object)
    with pytest.raises(InferenceFailedError, match="does not split into 2 images"):
        parse_top_k(raw, 2, "m")


# --- error mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        ("404", "Request for unknown model: 'nope' is not found", ModelNotFoundError),
        (
            "StatusCode.NOT_FOUND",
            "Request for unknown model: 'nope' is not found",
            ModelNotFoundError,
        ),
        ("400", "Request for unknown model: 'nope' is not found", ModelNotFoundError),
        ("400", "unexpected inference input 'inputx' for model 'tiny_cls'", InvalidInputError),
        (
            "StatusCode.INVALID_ARGUMENT",
            "unexpected inference input 'inputx' for model 'tiny_cls'",
            InvalidInputError,
        ),
        ("503", "Server not ready", ServerUnavailableError),
        ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", ServerUnavailableError),
        ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", InferenceTimeoutError),
        ("500", "cannot decode image", InferenceFailedError),
        ("StatusCode.INTERNAL", "cannot decode image", InferenceFailedError),
        ("500", "weights file is not found", InferenceFailedError),
        (None, "failed to obtain inference response", InferenceFailedError),
    ],
)
def test_map_error_picks_class_when_server_exception_has_status(
    status: str | None, message: str, expected: type[ClientError]
) -> None:
    error = map_error(InferenceServerException(msg=message, status=status), model="tiny_cls")
    assert type(error) is expected
    assert error.status == status


def test_map_error_keeps_server_message_and_names_model_when_mapping() -> None:
    exc = InferenceServerException(
        msg="[request id: <id_unknown>] inference request batch-size must be <= 4 for 'tiny_cls'",
        status="StatusCode.INVALID_ARGUMENT",
    )
    error = map_error(exc, model="tiny_cls")
    assert str(error) == (
        "model 'tiny_cls': [request id: <id_unknown>] inference request batch-size must be <= 4 "
        "for 'tiny_cls' [StatusCode.INVALID_ARGUMENT]"
    )
    assert error.model == "tiny_cls"
    assert isinstance(error, MaasError)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(104, "Connection reset by peer"),
        socket.gaierror(-2, "Name or service not known"),
        HTTPConnectionClosed("connection closed."),
        aiohttp.ServerDisconnectedError(),
    ],
)
def test_map_error_gives_unavailable_when_connection_fails(exc: BaseException) -> None:
    error = map_error(exc, model="m")
    assert type(error) is ServerUnavailableError
    assert type(exc).__name__ in str(error)


@pytest.mark.parametrize(
    "exc",
    [
        TimeoutError("timed out"),
        TimeoutError("timed out"),
        asyncio.TimeoutError(),
        gevent.Timeout(1.0),
        aiohttp.ServerTimeoutError("read timeout"),
    ],
)
def test_map_error_gives_timeout_when_transport_times_out(exc: BaseException) -> None:
    assert type(map_error(exc, model="m")) is InferenceTimeoutError


class _RpcError(grpc.RpcError):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_map_error_reads_code_when_given_raw_grpc_error() -> None:
    error = map_error(_RpcError(grpc.StatusCode.UNAVAILABLE, "Socket closed"), model="m")
    assert type(error) is ServerUnavailableError
    assert error.status == "StatusCode.UNAVAILABLE"
    assert "Socket closed" in str(error)


def test_map_error_returns_same_error_when_already_mapped() -> None:
    original = InvalidInputError("bad", model="m")
    assert map_error(original, model="other") is original


def test_map_error_gives_failed_when_exception_is_unknown() -> None:
    error = map_error(RuntimeError("boom"), model="m")
    assert type(error) is InferenceFailedError
    assert str(error) == "model 'm': RuntimeError: boom"


# --- model info ------------------------------------------------------------------------------


def test_parse_model_info_reads_shapes_and_batching_when_payload_is_http() -> None:
    assert parse_model_info(HTTP_METADATA, HTTP_CONFIG) == TINY_INFO


def test_parse_model_info_reads_string_dims_and_wrapped_config_when_payload_is_grpc_json() -> None:
    info = parse_model_info(GRPC_METADATA, GRPC_CONFIG)
    assert info == ModelInfo(
        name="slow",
        versions=("1",),
        inputs=(TensorInfo("x", "FP32", (-1,)), TensorInfo("mask", "BOOL", (-1,), optional=True)),
        outputs=(TensorInfo("y", "FP32", (-1,)), TensorInfo("z", "INT64", (1,))),
        max_batch_size=0,
    )


def test_parse_model_info_reads_max_batch_size_when_grpc_config_has_it() -> None:
    config = {"config": {**GRPC_CONFIG["config"], "max_batch_size": 8}}
    assert parse_model_info(GRPC_METADATA, config).max_batch_size == 8


# --- validation and request building ---------------------------------------------------------


def test_validate_inputs_names_expected_input_when_name_is_wrong() -> None:
    with pytest.raises(InvalidInputError) as caught:
        validate_inputs(TINY_INFO, {"inputx": np.zeros((1, 4), np.float32)})
    assert str(caught.value) == (
        "model 'tiny_cls' has no input(s) 'inputx'; expected inputs: input (FP32 [-1, 4])"
    )


def test_validate_inputs_names_expected_datatype_when_dtype_is_wrong() -> None:
    with pytest.raises(InvalidInputError) as caught:
        validate_inputs(TINY_INFO, {"input": np.zeros((1, 4), np.float64)})
    assert str(caught.value) == (
        "model 'tiny_cls' input 'input' has numpy dtype float64 (FP64); "
        "expected numpy float32 (FP32)"
    )


def test_validate_inputs_names_missing_input_when_required_input_is_absent() -> None:
    with pytest.raises(InvalidInputError, match=r"missing input\(s\) 'input'"):
        validate_inputs(TINY_INFO, {})


def test_validate_inputs_accepts_request_when_optional_input_is_absent() -> None:
    info = parse_model_info(GRPC_METADATA, GRPC_CONFIG)
    request = {"x": np.zeros(3, np.float32)}
    validate_inputs(info, request)  # mask is optional in the config: no InvalidInputError
    (built,) = build_infer_inputs("slow", request, grpcclient.InferInput)
    assert (built.name(), built.datatype(), built.shape()) == ("x", "FP32", [3])
    with pytest.raises(InvalidInputError, match=r"missing input\(s\) 'x'"):
        validate_inputs(info, {"mask": np.zeros(3, np.bool_)})  # x is not optional


def test_validate_inputs_accepts_object_array_when_model_expects_bytes() -> None:
    request = {"image": np.array([[b"\x89PNG"]], dtype=object)}
    validate_inputs(IMAGE_INFO, request)  # no InvalidInputError
    (built,) = build_infer_inputs("tiny_cls_image", request, grpcclient.InferInput)
    assert (built.name(), built.datatype(), built.shape()) == ("image", "BYTES", [1, 1])
    # Triton's BYTES wire format: each element as a 4-byte little-endian length, then its bytes
    assert built._get_content() == b"\x04\x00\x00\x00\x89PNG"


def test_validate_inputs_explains_bytes_when_str_array_is_given() -> None:
    with pytest.raises(InvalidInputError, match="dtype object holding bytes"):
        validate_inputs(IMAGE_INFO, {"image": np.array([["a.png"]])})


def test_validate_inputs_rejects_list_when_input_is_not_an_array() -> None:
    with pytest.raises(InvalidInputError, match="is a list"):
        validate_inputs(TINY_INFO, {"input": [[0.0, 1.0, 2.0, 3.0]]})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("dtype", "datatype"),
    [
        (np.float32, "FP32"),
        (np.float16, "FP16"),
        (np.float64, "FP64"),
        (np.int64, "INT64"),
        (np.uint8, "UINT8"),
        (np.bool_, "BOOL"),
        (object, "BYTES"),
        ("S5", "BYTES"),
        ("U5", None),
    ],
)
def test_triton_datatype_maps_numpy_dtype_when_converting(dtype: Any, datatype: str | None) -> None:
    assert triton_datatype(np.dtype(dtype)) == datatype


@pytest.mark.parametrize("module", [httpclient, grpcclient])
def test_build_infer_inputs_sets_shape_and_datatype_when_wrapping_arrays(module: Any) -> None:
    built = build_infer_inputs(
        "m", {"image": np.array([[b"a"], [b"b"]], dtype=object)}, module.InferInput
    )
    assert [(i.name(), i.shape(), i.datatype()) for i in built] == [("image", [2, 1], "BYTES")]


def test_select_outputs_gives_all_outputs_when_none_requested() -> None:
    assert select_outputs(TINY_INFO, None, 0) == ("probabilities",)


def test_select_outputs_treats_string_as_one_name_when_given_a_string() -> None:
    assert select_outputs(TINY_INFO, "probabilities", 3) == ("probabilities",)


def test_select_outputs_names_expected_outputs_when_output_is_unknown() -> None:
    with pytest.raises(InvalidInputError, match=r"expected outputs: probabilities \(FP32"):
        select_outputs(TINY_INFO, ["logits"], 0)


def test_select_outputs_raises_invalid_when_class_count_is_negative() -> None:
    with pytest.raises(InvalidInputError, match="class_count must be >= 0"):
        select_outputs(TINY_INFO, None, -1)


# --- urls and protocols ----------------------------------------------------------------------


def test_default_url_gives_triton_ports_when_protocol_is_known() -> None:
    assert (default_url("http"), default_url("grpc")) == ("localhost:8000", "localhost:8001")


def test_check_protocol_raises_client_error_when_protocol_is_unknown() -> None:
    with pytest.raises(ClientError, match="unknown protocol 'https'"):
        check_protocol("https")


def test_default_url_raises_client_error_when_protocol_is_unknown() -> None:
    with pytest.raises(ClientError, match=r"unknown protocol 'https'; expected 'http' or 'grpc'"):
        default_url("https")  # type: ignore[arg-type]


def test_resolve_url_raises_client_error_when_url_has_scheme() -> None:
    with pytest.raises(ClientError, match="without a scheme"):
        resolve_url("http://localhost:8000", "http")


def test_client_options_fill_default_url_when_url_is_none() -> None:
    assert ClientOptions.create(None, "grpc") == ClientOptions("localhost:8001", "grpc", 30.0, "")


@pytest.mark.parametrize(
    ("url", "protocol", "message"),
    [("http://localhost:8000", "http", "without a scheme"), ("x:1", "https", "unknown protocol")],
)
def test_client_options_raise_client_error_when_url_or_protocol_is_bad(
    url: str, protocol: Any, message: str
) -> None:
    with pytest.raises(ClientError, match=message):
        ClientOptions(url, protocol)


@pytest.mark.parametrize("client_class", [ModelClient, AsyncModelClient])
def test_from_options_gives_client_same_settings_as_constructor_when_options_are_shared(
    client_class: Any,
) -> None:
    options = ClientOptions.create("127.0.0.1:1", "grpc", 2.5, "3")
    client = client_class.from_options("m", options)
    expected = client_class("m", "127.0.0.1:1", "grpc", 2.5, "3")
    assert (client.options, client.url, client.protocol, client.timeout_s, client.version) == (
        expected.options,
        "127.0.0.1:1",
        "grpc",
        2.5,
        "3",
    )
    assert options == expected.options


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_model_client_reports_unavailable_when_nothing_listens(protocol: Any) -> None:
    with ModelClient("m", f"127.0.0.1:{free_port()}", protocol, timeout_s=5.0) as client:
        assert client.server_ready() is False
        assert client.is_ready() is False
        with pytest.raises(ServerUnavailableError, match="model 'm'"):
            client.info()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_async_model_client_reports_unavailable_when_nothing_listens(protocol: Any) -> None:
    async def probe() -> bool:
        async with AsyncModelClient("m", f"127.0.0.1:{free_port()}", protocol, 5.0) as client:
            with pytest.raises(ServerUnavailableError):
                await client.info()
            return await client.server_ready()

    assert asyncio.run(probe()) is False


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_model_clients_raise_unavailable_when_model_is_not_ready_in_time(protocol: Any) -> None:
    url = f"127.0.0.1:{free_port()}"

    async def wait_async() -> None:
        async with AsyncModelClient("m", url, protocol, timeout_s=5.0) as client:
            await client.wait_until_ready(timeout_s=0.2)

    with pytest.raises(ServerUnavailableError, match=r"was not ready within 0\.2 s"):
        asyncio.run(wait_async())
    with (
        ModelClient("m", url, protocol, timeout_s=5.0) as client,
        pytest.raises(ServerUnavailableError, match=r"was not ready within 0\.2 s"),
    ):
        client.wait_until_ready(timeout_s=0.2)


# --- images ----------------------------------------------------------------------------------


def test_prepare_images_builds_bytes_column_when_given_paths_and_bytes(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"png-bytes")
    batch = prepare_images([tmp_path / "a.png", str(tmp_path / "a.png"), b"jpeg-bytes"])
    assert batch.kind == "encoded"
    assert batch.array.shape == (3, 1)
    assert batch.array.dtype == object
    assert batch.array[:, 0].tolist() == [b"png-bytes", b"png-bytes", b"jpeg-bytes"]


def test_prepare_images_stacks_nchw_when_given_chw_and_nchw_arrays() -> None:
    chw = np.zeros((3, 4, 4), np.float32)
    batch = prepare_images([chw, np.ones((2, 3, 4, 4), np.float32)])
    assert batch.kind == "tensor"
    assert batch.array.shape == (3, 3, 4, 4)


def test_prepare_images_raises_invalid_when_encoded_and_arrays_are_mixed() -> None:
    with pytest.raises(InvalidInputError, match="cannot mix encoded images"):
        prepare_images([b"jpeg", np.zeros((3, 4, 4), np.float32)])


def test_prepare_images_raises_invalid_when_array_is_not_chw_or_nchw() -> None:
    with pytest.raises(InvalidInputError, match=r"\[C,H,W\] or \[N,C,H,W\], got \[4, 4\]"):
        prepare_images([np.zeros((4, 4), np.float32)])


def test_prepare_images_raises_invalid_when_file_is_missing(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot read image file"):
        prepare_images([tmp_path / "missing.jpg"])


def test_takes_encoded_images_is_true_only_when_single_input_is_bytes() -> None:
    assert (takes_encoded_images(IMAGE_INFO), takes_encoded_images(TINY_INFO)) == (True, False)


def test_image_companion_name_appends_suffix_when_naming_companion() -> None:
    assert IMAGE_COMPANION.name("resnet") == "resnet_image"


def test_image_companion_missing_error_names_tensor_inputs_and_ensemble_when_built() -> None:
    cause = ModelNotFoundError("model 'tiny_cls_image': unknown", model="tiny_cls_image")
    error = IMAGE_COMPANION.missing_error("tiny_cls", TINY_INFO, cause)
    assert str(error).startswith(
        "model 'tiny_cls' takes preprocessed tensors (input (FP32 [-1, 4])), and the server has "
        "no image ensemble 'tiny_cls_image' to decode encoded images; pass float32 arrays"
    )
    assert (error.model, error.status) == ("tiny_cls_image", None)


def test_classified_output_falls_back_to_first_output_when_no_probabilities() -> None:
    info = ModelInfo(
        "m", ("1",), TINY_INFO.inputs, (TensorInfo("logits", "FP32", (-1, 3)),), max_batch_size=0
    )
    assert (classified_output(TINY_INFO), classified_output(info)) == ("probabilities", "logits")


@pytest.mark.parametrize(
    ("count", "max_batch_size", "sizes"),
    [(5, 2, [2, 2, 1]), (3, 0, [3]), (4, 4, [4])],
)
def test_batch_slices_respects_max_batch_size_when_splitting(
    count: int, max_batch_size: int, sizes: list[int]
) -> None:
    slices = batch_slices(count, max_batch_size)
    assert [len(range(count)[part]) for part in slices] == sizes


def test_image_classifier_raises_invalid_when_top_k_is_below_one() -> None:
    with (
        ImageClassifier("m", f"127.0.0.1:{free_port()}") as classifier,
        pytest.raises(InvalidInputError, match="top_k must be >= 1, got 0"),
    ):
        classifier.classify([b"jpeg"], top_k=0)


def test_async_image_classifier_raises_invalid_when_top_k_is_below_one() -> None:
    async def classify() -> None:
        async with AsyncImageClassifier("m", f"127.0.0.1:{free_port()}", "grpc") as classifier:
            await classifier.classify([b"jpeg"], top_k=0)

    with pytest.raises(InvalidInputError, match="top_k must be >= 1"):
        asyncio.run(classify())


# --- routing images to the named model or its _image ensemble --------------------------------


@dataclass
class Served:
    """What the fake server serves, and the models `infer` was called on, in order."""

    models: dict[str, ModelInfo] = field(
        default_factory=lambda: {"tiny_cls": TINY_INFO, "tiny_cls_image": IMAGE_INFO}
    )
    calls: list[str] = field(default_factory=list)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Served:
    """Answer ModelClient/AsyncModelClient `info` and `infer` without a server."""
    fake = Served()
    models, calls = fake.models, fake.calls

    def info(model: str) -> ModelInfo:
        if model not in models:
            raise ModelNotFoundError(f"model {model!r}: unknown", model=model, status="404")
        return models[model]

    def infer(self: Any, inputs: Any, outputs: Any = None, class_count: int = 0) -> Any:
        ((_, batch),) = inputs.items()
        calls.append(self.model)
        return {outputs[0]: np.array([[b"0.9:1:dog"]] * len(batch), dtype=object)}

    async def async_info(self: Any) -> ModelInfo:
        return info(self.model)

    async def async_infer(self: Any, inputs: Any, outputs: Any = None, class_count: int = 0) -> Any:
        return infer(self, inputs, outputs, class_count)

    monkeypatch.setattr(ModelClient, "info", lambda self: info(self.model))
    monkeypatch.setattr(ModelClient, "infer", infer)
    monkeypatch.setattr(AsyncModelClient, "info", async_info)
    monkeypatch.setattr(AsyncModelClient, "infer", async_infer)
    return fake


def test_image_classifier_sends_encoded_to_ensemble_and_arrays_to_model_when_model_takes_tensors(
    served: Served,
) -> None:
    with ImageClassifier("tiny_cls", f"127.0.0.1:{free_port()}") as classifier:
        encoded = classifier.classify([b"png"], top_k=1)
        tensors = classifier.classify([np.zeros((3, 4, 4), np.float32)], top_k=1)
    assert served.calls == ["tiny_cls_image", "tiny_cls"]
    assert encoded == tensors == [[Classification("dog", 0.9, 1)]]


def test_async_image_classifier_sends_encoded_to_ensemble_when_model_takes_tensors(
    served: Served,
) -> None:
    async def classify() -> list[list[Classification]]:
        async with AsyncImageClassifier("tiny_cls", f"127.0.0.1:{free_port()}") as classifier:
            return await classifier.classify([b"png", b"jpeg"], top_k=1)

    assert len(asyncio.run(classify())) == 2
    assert served.calls == ["tiny_cls_image"]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_image_classifiers_raise_not_found_naming_ensemble_when_image_companion_is_missing(
    served: Served, asynchronous: bool
) -> None:
    del served.models["tiny_cls_image"]
    url = f"127.0.0.1:{free_port()}"

    async def classify_async() -> None:
        async with AsyncImageClassifier("tiny_cls", url) as classifier:
            await classifier.classify([b"png"])

    with pytest.raises(ModelNotFoundError, match="no image ensemble 'tiny_cls_image'") as caught:
        if asynchronous:
            asyncio.run(classify_async())
        else:
            with ImageClassifier("tiny_cls", url) as classifier:
                classifier.classify([b"png"])
    assert caught.value.model == "tiny_cls_image"
    assert served.calls == []
