"""Thousands of random and malformed requests against the public endpoints: no crash, no 5xx.

The only 5xx a client may see is the documented overload (503 / UNAVAILABLE "Exceeds maximum
queue size"); everything else is a 2xx or a 4xx / client-error status with a message, and the
server answers valid requests the same way afterwards without having been restarted.
"""

from __future__ import annotations

import http.client
import json
from collections import Counter
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2_grpc

from maas.clients import ModelClient
from tests.conftest import Exported, RunningServer
from tests.fuzz import HttpCase, Model, grpc_requests, http_cases

CASES = 2500
FUZZED = ("digits_cnn", "digits_cnn_image", "resnet50", "minilm", "minilm_text")
OVERLOAD = "is at its limit of"  # the gateway sheds a model at its admission limit
CLIENT_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,  # a message over gRPC's size limit
    grpc.StatusCode.UNIMPLEMENTED,
}


def served_models(url: str) -> list[Model]:
    client = httpclient.InferenceServerClient(url)
    models = []
    for name in FUZZED:
        config = client.get_model_config(name)
        inputs = {
            tensor["name"]: (
                "BYTES" if tensor["data_type"] == "TYPE_STRING" else tensor["data_type"][5:],
                [int(d) for d in tensor["dims"]],
            )
            for tensor in config["input"]
        }
        outputs = [tensor["name"] for tensor in config["output"]]
        models.append(Model(name, inputs, outputs, int(config.get("max_batch_size", 0))))
    client.close()
    return models


@pytest.fixture
def unharmed(server: RunningServer, exported: Exported) -> Iterator[list[Model]]:
    """The served models; afterwards: ready, not restarted, answering as before."""
    pixels = exported.results["digits_cnn"].built.eval_inputs["pixels"][:4]
    with ModelClient("digits_cnn", url=server.http_url) as client:
        before = client.infer({"pixels": pixels})["probabilities"]
    yield served_models(server.http_url)
    assert server.is_ready()
    log = server.log.read_text()
    assert "tritonserver killed" not in log and "tritonserver exited" not in log, log[-3000:]
    with ModelClient("digits_cnn", url=server.http_url) as client:
        np.testing.assert_array_equal(client.infer({"pixels": pixels})["probabilities"], before)


def send(url: str, case: HttpCase) -> tuple[int, str]:
    """One request on its own connection: the status and the error message."""
    host, port = url.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request(case.method, case.path, body=case.body, headers=case.headers)
        reply = connection.getresponse()
        text = reply.read().decode(errors="replace")
    except (ConnectionResetError, BrokenPipeError) as closed:
        # The gateway answers 413 as soon as it reads Content-Length and closes while we send.
        return (413, "closed while sending") if case.kind == "oversized" else (0, repr(closed))
    finally:
        connection.close()
    try:
        message = json.loads(text).get("error", "") if text else ""
    except (json.JSONDecodeError, AttributeError):
        message = text
    return reply.status, str(message)


def test_http_fuzz_gets_no_crash_and_no_server_error(
    server: RunningServer, unharmed: list[Model]
) -> None:
    statuses: Counter[int] = Counter()
    failures = []
    for index, case in enumerate(http_cases(unharmed, CASES, seed=7)):
        status, message = send(server.http_url, case)
        statuses[status] += 1
        overload = status == 503 and OVERLOAD in message
        silent = status >= 400 and case.method != "HEAD" and not message.strip()
        if (status >= 500 and not overload) or status == 0 or silent:
            failures.append(
                f"#{index} {case.kind} {case.method} {case.path[:80]}: {status} {message}"
            )
    print(f"HTTP fuzz: {CASES + 4} cases, statuses {dict(sorted(statuses.items()))}")
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures[:15])
    assert statuses[400] > CASES // 4, "most cases should be refused as bad requests"
    assert statuses[200] > CASES // 50, "the valid cases should be served"


def test_grpc_fuzz_gets_no_crash_and_no_server_error(
    server: RunningServer, unharmed: list[Model]
) -> None:
    codes: Counter[str] = Counter()
    failures = []
    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for index, request in enumerate(grpc_requests(unharmed, CASES, seed=11)):
            try:
                stub.ModelInfer(request, timeout=60)
                codes["OK"] += 1
                continue
            except grpc.RpcError as error:
                code, message = error.code(), error.details() or ""
            codes[code.name] += 1
            overload = code == grpc.StatusCode.UNAVAILABLE and OVERLOAD in message
            if (code not in CLIENT_ERRORS and not overload) or not message.strip():
                failures.append(f"#{index} {request.model_name[:40]}: {code.name} {message}")
    print(f"gRPC fuzz: {CASES} cases, codes {dict(sorted(codes.items()))}")
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures[:15])
    assert codes["INVALID_ARGUMENT"] > CASES // 4
    assert codes["OK"] > CASES // 50, "the valid cases should be served"
