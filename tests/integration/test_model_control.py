"""Model control: off by default; when on, only requests with the key may load and unload."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from maas.serve.embedded import CONTROL_HEADER, GRPC_CONTROL_HEADER
from tests.conftest import Exported, RunningServer, start_maas_serve, stop_maas_serve

KEY = "test-control-key-0123456789"


def post(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, method="POST", headers=headers or {}, data=b"")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def model_ready(server: RunningServer, model: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{server.http_url}/v2/models/{model}/ready") as r:
            return bool(r.status == 200)
    except urllib.error.HTTPError:
        return False


@pytest.fixture(scope="module")
def controlled(
    exported: Exported, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server of digits_cnn alone, with model control on behind KEY."""
    root = tmp_path_factory.mktemp("controlled")
    shutil.copytree(exported.repository.model_dir("digits_cnn"), root / "repo" / "digits_cnn")
    server = start_maas_serve(root / "repo", root, extra_args=("--control-key", KEY))
    yield server
    stop_maas_serve(server)


def test_model_control_is_off_by_default(server: RunningServer) -> None:
    repository = f"http://{server.http_url}/v2/repository"
    for url in (f"{repository}/models/digits_cnn/unload", f"{repository}/index"):
        for headers in ({}, {CONTROL_HEADER: KEY}):  # no key opens it: none was set
            status, body = post(url, headers)
            assert status == 403, (url, status, body)
            assert "model control is off" in body, body  # the gateway's refusal says why
    assert model_ready(server, "digits_cnn")


def test_grpc_model_control_is_off_by_default(server: RunningServer) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    calls = {
        "unload": lambda: client.unload_model("digits_cnn"),
        "unload with a key": lambda: client.unload_model(
            "digits_cnn", headers={GRPC_CONTROL_HEADER: KEY}
        ),
        "load": lambda: client.load_model("digits_cnn"),
        "index": lambda: client.get_model_repository_index(),
    }
    try:
        for what, call in calls.items():
            with pytest.raises(InferenceServerException) as refused:
                call()
            assert refused.value.status() == "StatusCode.PERMISSION_DENIED", (what, refused.value)
            assert "model control is off" in str(refused.value)
        assert client.is_model_ready("digits_cnn")
    finally:
        client.close()


def test_http_control_needs_the_key(controlled: RunningServer) -> None:
    unload = f"http://{controlled.http_url}/v2/repository/models/digits_cnn/unload"
    for headers in ({}, {CONTROL_HEADER: "not-the-key-0123456789"}):
        status, body = post(unload, headers)
        assert status == 403 and CONTROL_HEADER in body
        assert model_ready(controlled, "digits_cnn")
    assert post(unload, {CONTROL_HEADER: KEY})[0] == 200
    assert not model_ready(controlled, "digits_cnn")
    load = f"http://{controlled.http_url}/v2/repository/models/digits_cnn/load"
    assert post(load, {CONTROL_HEADER: KEY})[0] == 200
    assert model_ready(controlled, "digits_cnn")


def test_grpc_control_needs_the_key(controlled: RunningServer) -> None:
    client = grpcclient.InferenceServerClient(controlled.grpc_url)
    with pytest.raises(InferenceServerException) as refused:
        client.unload_model("digits_cnn")
    assert refused.value.status() == "StatusCode.PERMISSION_DENIED"
    assert client.is_model_ready("digits_cnn")
    client.unload_model("digits_cnn", headers={GRPC_CONTROL_HEADER: KEY})
    assert not client.is_model_ready("digits_cnn")
    client.load_model("digits_cnn", headers={GRPC_CONTROL_HEADER: KEY})
    assert client.is_model_ready("digits_cnn")
    client.close()


def test_a_weak_control_key_is_refused_before_the_server_starts(tmp_path: Path) -> None:
    from maas.base.errors import ServerError
    from maas.serve.embedded import ServerOptions

    with pytest.raises(ServerError, match="16 or more characters"):
        ServerOptions(tmp_path, control_key="short")
    with pytest.raises(ServerError, match="16 or more characters"):
        ServerOptions(tmp_path, control_key="has,a,comma=and-equals-sign")
