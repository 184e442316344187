"""Tenants and API keys at the gateway of a real `maas serve`, over both protocols.

One stack serves digits_cnn and its scores ensemble with `--auth` and a key file; the tests
change the file while it runs, as `maas keys` does, and the stack applies each change.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shared_memory
from tritonclient.utils import InferenceServerException

from maas.base.errors import (
    AuthenticationError,
    MaasError,
    PermissionDeniedError,
    RateLimitedError,
)
from maas.base.sentences import SENTENCES
from maas.base.served.text import TOKENIZER_FILE, TextTokenizer
from maas.benchmarks.peers_bench import subset_repository
from maas.clients import NO_RETRIES, ModelClient, Protocol, map_error
from maas.export.samples import write_held_out_digits
from maas.monitor.scrape import scrape
from maas.serve.audit import TOKENS_POLL_S
from maas.serve.keys import KeyFile, TenantPolicy
from tests.conftest import Exported, RunningServer, start_maas_serve, stop_maas_serve

MODEL, OTHER, TEXT_MODEL = "digits_cnn", "digits_cnn_scores", "minilm_text"
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
    repo = subset_repository(exported.repository, f"{MODEL}_image", folder / "repo")  # + MODEL
    shutil.copytree(exported.repository.model_dir(OTHER), repo / OTHER)  # its step is MODEL
    for name in (TEXT_MODEL, "minilm_tokenizer", "minilm"):  # tokens are metered
        shutil.copytree(exported.repository.model_dir(name), repo / name, symlinks=True)
    serve = start_keyed_stack(repo, folder, keys)
    yield serve
    assert stop_maas_serve(serve) == 0


def start_keyed_stack(repo: Path, folder: Path, keys: Keys) -> RunningServer:
    """`maas serve` with keys required, following the key file, and metering on."""
    audit = ["--audit-log", str(folder / "audit.jsonl")]
    return start_maas_serve(repo, folder, extra_args=["--auth", "--keys", str(keys.path), *audit])


@pytest.fixture(scope="module")
def pixels(exported: Exported) -> np.ndarray:
    return exported.results[MODEL].built.eval_inputs["pixels"][:1]


def call(
    stack: RunningServer, protocol: Protocol, key: str, inputs: np.ndarray, model: str = MODEL
) -> dict[str, np.ndarray]:
    """One inference of a model with one input: pixels, or TEXT for the text model."""
    name = "TEXT" if model == TEXT_MODEL else "pixels"
    with ModelClient(
        model, url=stack.url(protocol), protocol=protocol, api_key=key, retry=NO_RETRIES
    ) as client:
        return client.infer({name: inputs})


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


def maas(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "maas.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_maas_infer_and_maas_bench_send_the_key(
    stack: RunningServer, keys: Keys, exported: Exported, tmp_path: Path
) -> None:
    (digit, _), *_ = write_held_out_digits(tmp_path, 1)
    key = keys.create("zeta")
    time.sleep(APPLIED_S + 0.5)
    refused = maas("infer", MODEL, str(digit), "--url", stack.http_url)
    assert refused.returncode == 1 and "a valid API key is needed" in refused.stderr
    answered = maas("infer", MODEL, str(digit), "--url", stack.grpc_url, "--protocol", "grpc",
                    "--api-key", key)  # fmt: skip
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.count("(") == 5, answered.stdout  # the top-5 labels with scores
    bench = maas(
        "bench", MODEL, "--url", stack.http_url, "--stats-url", stack.http_url, "--users", "2",
        "--duration", "2", "--warmup", "0.5", "--limit-seconds", "0", "--out",
        str(tmp_path / "bench"), "--repository", str(exported.repository.root), "--api-key", key,
    )  # fmt: skip
    assert bench.returncode == 0, bench.stdout + bench.stderr
    assert " 0 failed" in bench.stdout, bench.stdout


def audit_entries(stack: RunningServer) -> list[dict[str, object]]:
    path = stack.log.parent / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def expected_tokens(exported: Exported, texts: list[str]) -> int:
    """Tokens of the texts as the served tokenizer counts them: padding aside."""
    folder = exported.repository.model_dir("minilm_tokenizer") / "1"
    _, mask = TextTokenizer(folder / TOKENIZER_FILE, max_length=10_000).tokenize(texts)
    return int(mask.sum())


def test_usage_is_metered_per_tenant_model_and_protocol_as_sent(
    stack: RunningServer, keys: Keys, exported: Exported, pixels: np.ndarray
) -> None:
    key = keys.create("meter", TenantPolicy(models=(MODEL, TEXT_MODEL)))
    time.sleep(APPLIED_S + 0.5)
    sent = {"http": 5, "grpc": 3}
    for protocol, count in sent.items():
        for _ in range(count):
            call(stack, protocol, key, pixels)  # type: ignore[arg-type]
    texts = {"http": list(SENTENCES[:3]), "grpc": list(SENTENCES[8:10])}
    for protocol, batch in texts.items():
        tensor = np.array([[text.encode()] for text in batch], dtype=object)
        for _ in range(2):
            call(stack, protocol, key, tensor, model=TEXT_MODEL)  # type: ignore[arg-type]
    with pytest.raises(PermissionDeniedError):
        call(stack, "http", key, pixels, model=OTHER)
    time.sleep(0.5)  # the gateway logs a request once it has ended
    everything = [e for e in audit_entries(stack) if e["tenant"] == "meter"]
    assert {e["call"] for e in everything} >= {"infer", "other"}  # metadata reads are audited
    mine = [e for e in everything if e["call"] == "infer" and e["model"] == MODEL]
    assert len(mine) == 8
    for protocol, count in sent.items():
        answered = [e for e in mine if e["protocol"] == protocol]
        assert len(answered) == count and all(e["status"] == 200 for e in answered)
        assert all(int(str(e["bytes_in"])) > pixels.nbytes for e in answered)
        assert all(e["items"] == 1 for e in answered)
    (refused,) = [e for e in everything if e["model"] == OTHER]
    assert refused["status"] == 403 and refused["server_ms"] == -1, "refused before Triton"
    assert set(mine[0]) == {
        "time", "tenant", "model", "version", "protocol", "call", "status", "grpc_status",
        "latency_ms", "server_ms", "bytes_in", "bytes_out", "items",
    }  # fmt: skip
    tokens = {protocol: 2 * expected_tokens(exported, batch) for protocol, batch in texts.items()}
    metrics_url = f"http://127.0.0.1:{stack.stack_metrics_port}/metrics"

    def tokens_metered() -> bool:  # the tokenizer's counters are read every few seconds
        metrics = scrape(metrics_url)
        return all(
            metrics.total("maas_tenant_tokens_total", tenant="meter", model=TEXT_MODEL,
                          protocol=protocol) == count
            for protocol, count in tokens.items()
        )  # fmt: skip

    until(tokens_metered, TOKENS_POLL_S + 3)
    metrics = scrape(metrics_url)
    for protocol, count in sent.items():
        labels = {"tenant": "meter", "model": MODEL, "protocol": protocol}
        assert metrics.total("maas_tenant_requests_total", **labels) == count
        assert metrics.total("maas_tenant_items_total", **labels) == count
        assert metrics.total("maas_tenant_failures_total", **labels) == 0
        assert metrics.total("maas_tenant_triton_seconds_total", **labels) > 0
        text_labels = {**labels, "model": TEXT_MODEL}
        assert metrics.total("maas_tenant_items_total", **text_labels) == 2 * len(texts[protocol])
    assert metrics.total("maas_tenant_requests_total", tenant="meter", model=OTHER) == 0
    usage = maas("usage", "--audit-log", str(stack.log.parent / "audit.jsonl"), "--format", "csv")
    assert usage.returncode == 0, usage.stderr
    header, *lines = usage.stdout.splitlines()
    rows = {tuple(line.split(",")[:3]): dict(zip(header.split(","), line.split(","), strict=True))
            for line in lines}  # fmt: skip
    for protocol, count in sent.items():
        row = rows[("meter", MODEL, protocol)]
        assert (row["requests"], row["failures"], row["items"]) == (str(count), "0", str(count))
        text_row = rows[("meter", TEXT_MODEL, protocol)]
        assert text_row["requests"] == "2" and text_row["items"] == str(2 * len(texts[protocol]))
        assert text_row["tokens"] == str(tokens[protocol])
    assert ("meter", OTHER, "http") not in rows  # refused when reading metadata: not inference


def test_no_log_the_stack_writes_holds_a_payload_or_a_key(stack: RunningServer, keys: Keys) -> None:
    key = keys.create("privacy")
    time.sleep(APPLIED_S + 0.5)
    marker = "PAYLOAD-MARKER-7f3a9c"
    bodies = [
        {"id": marker, "inputs": [{"name": "pixels", "shape": [1, 1, 8, 8], "datatype": "FP32",
                                   "data": [0.5] * 64}]},
        {"id": marker, "inputs": [{"name": marker, "shape": [1], "datatype": "BYTES",
                                   "data": [marker]}]},
    ]  # fmt: skip
    for body in bodies:
        request = urllib.request.Request(
            f"http://{stack.http_url}/v2/models/{MODEL}/infer",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(request, timeout=10).read()
        except urllib.error.HTTPError as refused:
            refused.read()
    time.sleep(0.5)
    logs = [p for p in stack.log.parent.rglob("*") if p.is_file() and p.suffix != ".map"]
    assert any(p.name == "audit.jsonl" for p in logs) and any(p.name == "haproxy.log" for p in logs)
    for path in logs:
        if path.stat().st_size > 50 * 2**20 or path.suffix in (".so", ".onnx", ".xml", ".bin"):
            continue
        text = path.read_bytes()
        assert marker.encode() not in text, f"{path} holds a payload"
        assert key.encode() not in text, f"{path} holds an API key"


SHM_REFUSAL = r"its own shared memory|one region of the tenant's"


class SharedRegion:
    """A /dev/shm region holding one digit's pixels, registered by its tenant."""

    def __init__(self, name: str, key: str, pixels: np.ndarray) -> None:
        self.name, self.key, self.byte_size = name, key, pixels.nbytes
        self.handle = shared_memory.create_shared_memory_region(name, key, pixels.nbytes)
        shared_memory.set_shared_memory_region(self.handle, [pixels])

    def close(self) -> None:
        shared_memory.destroy_shared_memory_region(self.handle)


def shm_infer(stack: RunningServer, protocol: Protocol, secret: str, region: SharedRegion,
              shape: list[int]) -> np.ndarray:  # fmt: skip
    """digits_cnn on pixels read from a registered region, with tritonclient as a user would."""
    module: Any = httpclient if protocol == "http" else grpcclient
    tensor = module.InferInput("pixels", shape, "FP32")
    tensor.set_shared_memory(region.name, region.byte_size)
    client = module.InferenceServerClient(stack.url(protocol))
    try:
        answer = client.infer(MODEL, [tensor], headers=bearer(protocol, secret))
        return np.asarray(answer.as_numpy("probabilities"))
    except InferenceServerException as failure:
        raise map_error(failure, model=MODEL) from None
    finally:
        client.close()


def bearer(protocol: Protocol, secret: str) -> dict[str, str]:
    return {"authorization" if protocol == "grpc" else "Authorization": f"Bearer {secret}"}


def test_a_tenants_shared_memory_is_out_of_other_tenants_reach(
    stack: RunningServer, keys: Keys, protocol: Protocol, pixels: np.ndarray
) -> None:
    owner, other = f"owner-{protocol}", f"other-{protocol}"
    keys.create(owner)
    keys.create(other)
    time.sleep(APPLIED_S + 0.5)
    region = SharedRegion(f"{owner}~pixels", f"/{owner}~pixels", pixels)
    module: Any = httpclient if protocol == "http" else grpcclient
    client = module.InferenceServerClient(stack.url(protocol))
    mine, theirs = bearer(protocol, keys.secrets[owner]), bearer(protocol, keys.secrets[other])
    try:
        client.register_system_shared_memory(region.name, region.key, region.byte_size,
                                             headers=mine)  # fmt: skip
        expected = call(stack, protocol, keys.secrets[owner], pixels)["probabilities"]
        read = shm_infer(stack, protocol, keys.secrets[owner], region, list(pixels.shape))
        np.testing.assert_allclose(read, expected, rtol=1e-5)

        with pytest.raises(PermissionDeniedError, match=f"region '{owner}~pixels' must begin"):
            shm_infer(stack, protocol, keys.secrets[other], region, list(pixels.shape))
        refusals = {
            "its region named for it, over the owner's file": lambda: (
                client.register_system_shared_memory(
                    f"{other}~stolen", region.key, region.byte_size, headers=theirs)),
            "a region in the owner's name": lambda: client.register_system_shared_memory(
                f"{owner}~mine-now", f"/{other}~x", region.byte_size, headers=theirs),
            "every region's status": lambda: client.get_system_shared_memory_status(
                headers=theirs),
            "the owner's region's status": lambda: client.get_system_shared_memory_status(
                region.name, headers=theirs),
            "dropping every region": lambda: client.unregister_system_shared_memory(
                headers=theirs),
            "dropping the owner's region": lambda: client.unregister_system_shared_memory(
                region.name, headers=theirs),
        }  # fmt: skip
        for what, attempt in refusals.items():
            with pytest.raises(InferenceServerException, match=SHM_REFUSAL) as refused:
                attempt()
            status = str(refused.value.status())
            assert status in ("403", "StatusCode.PERMISSION_DENIED"), (what, status)
        status = client.get_system_shared_memory_status(region.name, headers=mine)
        assert region.name in str(status), "the owner's region is still registered"
        assert np.allclose(
            shm_infer(stack, protocol, keys.secrets[owner], region, list(pixels.shape)), expected
        )
        client.unregister_system_shared_memory(region.name, headers=mine)
    finally:
        client.close()
        region.close()
