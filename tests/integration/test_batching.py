"""Concurrent requests are really batched by Triton's dynamic batcher."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tritonclient.http as httpclient

from maas.clients import ModelClient
from tests.conftest import Exported, RunningServer
from tests.integration.server_metrics import RequestCounts, request_counts

CONCURRENT_REQUESTS = 64


def model_counts(server: RunningServer, model: str) -> tuple[int, int]:
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        stats = client.get_inference_statistics(model)["model_stats"][0]
    finally:
        client.close()
    return int(stats["inference_count"]), int(stats["execution_count"])


def settled_counts(
    server: RunningServer, expected: int, model: str = "digits_cnn"
) -> tuple[int, int]:
    """Triton counts a request when it is released, just after its response: wait for that."""
    deadline = time.monotonic() + 5.0
    while (counts := model_counts(server, model))[0] < expected and (time.monotonic() < deadline):
        time.sleep(0.05)
    return counts


def test_concurrent_requests_are_each_answered_and_counted_once_in_fewer_executions(
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


WAITING = 8  # single-photo requests that queue while resnet50's one instance is busy


def test_requests_that_wait_together_are_run_as_one_batch(
    server: RunningServer, exported: Exported
) -> None:
    """Two full batches (max_batch_size 16) keep the instance busy, one running and one queued;
    the single-photo requests sent meanwhile wait together and must run batched."""
    crops = exported.results["resnet50"].built.eval_inputs["pixel_values"]
    full = np.concatenate([crops] * (16 // len(crops) + 1))[:16]
    clients: list[ModelClient] = []

    def infer(client: ModelClient, photos: np.ndarray) -> np.ndarray:
        return client.infer({"pixel_values": photos}, outputs=["logits"])["logits"]

    try:
        warm_up_from = model_counts(server, "resnet50")[0]
        for _ in range(2 + WAITING):  # connected, metadata read: only requests are sent later
            clients.append(ModelClient("resnet50", url=server.grpc_url, protocol="grpc"))
            infer(clients[-1], full[:1])
        settled = warm_up_from + len(clients)
        inferences_before, executions_before = settled_counts(server, settled, "resnet50")
        answered_before = request_counts(server, "resnet50").succeeded
        with ThreadPoolExecutor(max_workers=2 + WAITING) as pool:
            busy = [pool.submit(infer, client, full) for client in clients[:2]]
            # The server's own counts, not guesses: the first full batch runs, the second waits.
            wait_for(
                server,
                lambda counts, answered: counts.pending >= 1 and answered == 0,
                answered_before,
            )
            waiting = [
                pool.submit(infer, client, full[i : i + 1]) for i, client in enumerate(clients[2:])
            ]
            # All eight queued at once: the pending count less the full batch still queued
            # (none once the first is answered and the second runs).
            wait_for(
                server,
                lambda counts, answered: counts.pending - (answered == 0) >= WAITING,
                answered_before,
            )
            busy_results = [future.result(timeout=60) for future in busy]
            waiting_results = [future.result(timeout=60) for future in waiting]
    finally:
        for client in clients:
            client.close()
    sent = 2 * len(full) + WAITING
    inferences, executions = settled_counts(server, inferences_before + sent, "resnet50")
    assert inferences - inferences_before == sent
    # The full batches, then the eight in at most WAITING // 4 runs: Triton forms each batch
    # while the previous one runs (payload prefetching, on without a queue policy) and closes it
    # at the preferred size of 4; without batching the eight would take eight runs.
    assert 2 + 1 <= executions - executions_before <= 2 + WAITING // 4 + 1
    # Each answer is its own photo's: nearest to that photo's row of a full batch.
    distinct = busy_results[0][: len(crops)]
    nearest = [int(np.linalg.norm(distinct - row[0], axis=1).argmin()) for row in waiting_results]
    assert nearest == [i % len(crops) for i in range(WAITING)]


def wait_for(
    server: RunningServer, ready: Callable[[RequestCounts, int], bool], answered_before: int
) -> None:
    """Poll resnet50's request counts until ready(counts, requests answered since the two full
    batches were sent); fail once both are answered: the instance was free before that."""
    deadline = time.monotonic() + 60
    while not ready(
        counts := request_counts(server, "resnet50"), answered := counts.succeeded - answered_before
    ):
        assert answered < 2, f"the instance went idle first: {counts}"
        assert time.monotonic() < deadline, counts
        time.sleep(0.002)
