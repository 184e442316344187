"""Concurrent requests are really batched by Triton's dynamic batcher."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tritonclient.http as httpclient

from maas.clients import ModelClient
from tests.conftest import Exported, RunningServer

CONCURRENT_REQUESTS = 64


def model_counts(server: RunningServer, model: str) -> tuple[int, int]:
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        stats = client.get_inference_statistics(model)["model_stats"][0]
    finally:
        client.close()
    return int(stats["inference_count"]), int(stats["execution_count"])


def settled_counts(server: RunningServer, expected: int) -> tuple[int, int]:
    """Triton counts a request when it is released, just after its response: wait for that."""
    deadline = time.monotonic() + 5.0
    while (counts := model_counts(server, "digits_cnn"))[0] < expected and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    return counts


def test_concurrent_requests_are_batched_into_fewer_executions(
    server: RunningServer, exported: Exported
) -> None:
    pixels = exported.results["digits_cnn"].built.eval_inputs["pixels"]
    inferences_before, executions_before = model_counts(server, "digits_cnn")

    def one_request(index: int) -> np.ndarray:
        with ModelClient("digits_cnn", url=server.grpc_url, protocol="grpc") as client:
            return client.infer({"pixels": pixels[index : index + 1]}, outputs=["probabilities"])[
                "probabilities"
            ]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one_request, range(CONCURRENT_REQUESTS)))
    inferences, executions = settled_counts(server, inferences_before + CONCURRENT_REQUESTS)
    assert inferences - inferences_before == CONCURRENT_REQUESTS
    assert executions - executions_before < CONCURRENT_REQUESTS
    assert all(result.shape == (1, 10) for result in results)
