"""Tenants and API keys at the gateway of a real `maas serve`, over both protocols.

One stack serves digits_cnn and its scores ensemble with `--auth` and a key file; the tests
change the file while it runs, as `maas keys` does, and the stack applies each change.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from maas.base.errors import (
    AuthenticationError,
    MaasError,
    PermissionDeniedError,
    RateLimitedError,
)
from maas.benchmarks.peers_bench import subset_repository
from maas.clients import NO_RETRIES, ModelClient, Protocol
from maas.serve.keys import KeyFile, TenantPolicy
from tests.conftest import Exported, RunningServer, start_maas_serve, stop_maas_serve

MODEL, OTHER = "digits_cnn", "digits_cnn_scores"
APPLIED_S = 1.0  # a key file change must be in force within this


class Keys:
    """The key file of the running stack, and the secrets of the keys the tests made."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.secrets: dict[str, str] = {}

    def create(self, tenant: str, policy: TenantPolicy | None = None) -> str:
        keys, secret = KeyFile.load(self.path).create(tenant, policy)
        keys.save(self.path)
        self.secrets[tenant] = secret
        return secret


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("keys")
    keys = Keys(folder / "keys.json")
    keys.create("alpha", TenantPolicy(models=(MODEL,), concurrency=2))
    for protocol in ("http", "grpc"):
        keys.create(f"beta-{protocol}", TenantPolicy(rate_per_s=5))
        keys.create(f"gamma-{protocol}", TenantPolicy(quota_per_day=3))
    return keys


@pytest.fixture(scope="module")
def stack(
    exported: Exported, keys: Keys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("keyed")
    repo = subset_repository(exported.repository, OTHER, folder / "repo")
    if not (repo / MODEL).exists():
        shutil.copytree(exported.repository.model_dir(MODEL), repo / MODEL)
    serve = start_maas_serve(repo, folder, extra_args=["--auth", "--keys", str(keys.path)])
    yield serve
    assert stop_maas_serve(serve) == 0


@pytest.fixture(scope="module")
def pixels(exported: Exported) -> np.ndarray:
    return exported.results[MODEL].built.eval_inputs["pixels"][:1]


def call(
    stack: RunningServer, protocol: Protocol, key: str, pixels: np.ndarray, model: str = MODEL
) -> dict[str, np.ndarray]:
    with ModelClient(
        model, url=stack.url(protocol), protocol=protocol, api_key=key, retry=NO_RETRIES
    ) as client:
        return client.infer({"pixels": pixels})


def test_calls_without_a_valid_key_are_unauthenticated_but_health_is_open(
    stack: RunningServer, keys: Keys, protocol: Protocol, pixels: np.ndarray
) -> None:
    for key in ("", "maas_0000_not-a-key"):
        with pytest.raises(AuthenticationError, match="a valid API key is needed"):
            call(stack, protocol, key, pixels)
    with ModelClient(MODEL, url=stack.url(protocol), protocol=protocol, api_key="") as client:
        assert client.server_ready()  # probes need no key
    assert call(stack, protocol, keys.secrets["alpha"], pixels)["probabilities"].shape == (1, 10)


def test_a_model_outside_the_tenants_list_is_permission_denied(
    stack: RunningServer, keys: Keys, protocol: Protocol, pixels: np.ndarray
) -> None:
    with pytest.raises(PermissionDeniedError, match=f"tenant alpha may not call model {OTHER}"):
        call(stack, protocol, keys.secrets["alpha"], pixels, model=OTHER)
    answer = call(stack, protocol, keys.secrets[f"beta-{protocol}"], pixels, model=OTHER)
    assert answer, "a tenant with every model may call it"


def test_a_tenant_over_its_rate_is_refused_with_a_retry_hint(
    stack: RunningServer, keys: Keys, protocol: Protocol, pixels: np.ndarray
) -> None:
    time.sleep(1.1)  # a second of its own
    outcomes: list[str] = []
    with ModelClient(
        MODEL,
        url=stack.url(protocol),
        protocol=protocol,
        api_key=keys.secrets[f"beta-{protocol}"],
        retry=NO_RETRIES,
    ) as client:
        began = time.monotonic()
        while time.monotonic() - began < 0.5:
            try:
                client.infer({"pixels": pixels})
                outcomes.append("ok")
            except RateLimitedError as limited:
                assert limited.retry_after_s == 1 and "over its request rate" in str(limited)
                outcomes.append("limited")
    assert 1 <= outcomes.count("ok") <= 5 and outcomes.count("limited") > 0, outcomes


def test_a_tenant_past_its_daily_quota_is_refused(
    stack: RunningServer, keys: Keys, protocol: Protocol, pixels: np.ndarray
) -> None:
    key = keys.secrets[f"gamma-{protocol}"]
    for _ in range(3):
        call(stack, protocol, key, pixels)
    with pytest.raises(RateLimitedError, match="daily quota") as refused:
        call(stack, protocol, key, pixels)
    assert refused.value.retry_after_s == 60


class HeldRequest:
    """An HTTP inference request of a tenant sent up to its middle: in flight at the gateway."""

    def __init__(self, url: str, key: str, pixels: np.ndarray) -> None:
        tensor = httpclient.InferInput("pixels", list(pixels.shape), "FP32")
        tensor.set_data_from_numpy(pixels, binary_data=True)
        body, json_size = httpclient.InferenceServerClient.generate_request_body([tensor])
        host, port = url.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        head = (
            f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: {url}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/octet-stream\r\n"
            f"Inference-Header-Content-Length: {json_size}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + body[: json_size // 2])

    def close(self) -> None:
        self.sock.close()


def test_a_tenant_at_its_in_flight_limit_is_refused_until_one_ends(
    stack: RunningServer, keys: Keys, protocol: Protocol, pixels: np.ndarray
) -> None:
    key = keys.secrets["alpha"]
    held = [HeldRequest(stack.http_url, key, pixels) for _ in range(2)]
    time.sleep(0.2)
    try:
        with pytest.raises(RateLimitedError, match="limit of requests in flight"):
            call(stack, protocol, key, pixels)
    finally:
        for request in held:
            request.close()
    time.sleep(0.2)
    assert call(stack, protocol, key, pixels)


def until(condition: object, seconds: float) -> float:
    """Seconds until condition() holds; fails past `seconds`."""
    began = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - began < seconds, "not in force in time"
        time.sleep(0.05)
    return time.monotonic() - began


def test_keys_created_and_revoked_while_serving_take_effect_within_a_second(
    stack: RunningServer, keys: Keys, pixels: np.ndarray
) -> None:
    key = keys.create("delta")

    def accepted() -> bool:
        try:
            call(stack, "grpc", key, pixels)
            return True
        except AuthenticationError:
            return False

    until(accepted, APPLIED_S + 0.5)
    KeyFile.load(keys.path).revoke(tenant="delta")[0].save(keys.path)
    until(lambda: not accepted(), APPLIED_S + 0.5)
    with pytest.raises(AuthenticationError):
        call(stack, "http", key, pixels)


def test_rotating_a_key_under_load_fails_no_request_of_a_valid_key(
    stack: RunningServer, keys: Keys, pixels: np.ndarray
) -> None:
    old = keys.create("epsilon")
    time.sleep(APPLIED_S + 0.5)
    current = {"key": old}
    stop = threading.Event()
    failures: list[str] = []
    answered = [0]

    def caller(protocol: Protocol) -> None:
        while not stop.is_set():
            try:
                call(stack, protocol, current["key"], pixels)
                answered[0] += 1
            except MaasError as failure:
                failures.append(f"{protocol}: {failure}")

    callers = [threading.Thread(target=caller, args=(p,)) for p in ("http", "grpc")]
    for thread in callers:
        thread.start()
    time.sleep(0.5)
    keys_with_both, new = KeyFile.load(keys.path).create("epsilon")  # rotate --keep-old
    keys_with_both.save(keys.path)
    time.sleep(APPLIED_S + 0.5)
    current["key"] = new  # the tenant's callers switch over
    time.sleep(0.5)
    revoked = next(k.key_id for k in KeyFile.load(keys.path).keys if k.tenant == "epsilon")
    KeyFile.load(keys.path).revoke(key_id=revoked)[0].save(keys.path)
    time.sleep(APPLIED_S + 0.5)
    stop.set()
    for thread in callers:
        thread.join()
    assert not failures, failures[:3]
    assert answered[0] > 50
    with pytest.raises(AuthenticationError):
        call(stack, "http", old, pixels)
