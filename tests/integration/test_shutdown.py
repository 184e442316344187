"""SIGTERM to `maas serve` lets in-flight requests finish, then exits cleanly."""

from __future__ import annotations

import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from maas.clients import NO_RETRIES, ModelClient, Protocol, ServerUnavailableError
from tests.conftest import Exported, start_maas_serve, stop_maas_serve
from tests.integration.server_metrics import gateway_requests, request_counts

REQUESTS = 8  # of max_batch_size (16) photos each: one execution per request, run one by one
QUEUED = 2  # requests that must still be in flight when the signal is sent
# CI runs it once per protocol; MAAS_SHUTDOWN_ROUNDS=20 is the flake hunt the README quotes.
ROUNDS = int(os.environ.get("MAAS_SHUTDOWN_ROUNDS", "1"))


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_sigterm_finishes_in_flight_requests_then_exits_zero(
    exported: Exported, tmp_path: Path, protocol: Protocol, round_: int
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(exported.repository.model_dir("resnet50"), repo / "resnet50")
    server = start_maas_serve(repo, tmp_path)
    crops = exported.results["resnet50"].built.eval_inputs["pixel_values"]
    photos = np.concatenate([crops] * (16 // len(crops) + 1))[:16]
    connected = threading.Barrier(REQUESTS + 1)  # every client connected, metadata read
    go = threading.Event()

    def infer(rows: np.ndarray) -> tuple[np.ndarray, float]:
        # Each thread makes its own client: tritonclient's HTTP client is bound to its thread.
        with ModelClient("resnet50", url=server.url(protocol), protocol=protocol) as client:
            client.infer({"pixel_values": rows[:1]}, outputs=["probabilities"])
            connected.wait(timeout=60)
            go.wait(timeout=60)
            result = client.infer({"pixel_values": rows}, outputs=["probabilities"])
        return result["probabilities"], time.monotonic()

    try:
        with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
            futures = [pool.submit(infer, photos) for _ in range(REQUESTS)]
            connected.wait(timeout=60)
            deadline = time.monotonic() + 10
            while (before := request_counts(server, "resnet50")).succeeded < REQUESTS:
                assert time.monotonic() < deadline, before  # counted just after the answer
                time.sleep(0.01)
            go.set()
            # Wait for the servers' own counts, not a guess: every request has reached the
            # gateway's model backend (waiting there or passed on to Triton) and at least
            # QUEUED of them are still unanswered.
            deadline = time.monotonic() + 60
            while True:
                counts = request_counts(server, "resnet50")
                answered = counts.succeeded - before.succeeded
                at_gateway = gateway_requests(server, f"{protocol}_model_resnet50")
                if at_gateway + answered == REQUESTS and REQUESTS - answered >= QUEUED:
                    break
                failed = [f.exception() for f in futures if f.done() and f.exception()]
                assert not failed, failed
                assert REQUESTS - answered >= QUEUED, f"answered before all arrived: {counts}"
                assert time.monotonic() < deadline, f"never all at the gateway: {counts}"
                time.sleep(0.002)
            in_flight = REQUESTS - answered
            signalled = time.monotonic()
            code = stop_maas_serve(server)
            results = [future.result(timeout=60) for future in futures]
    finally:
        go.set()
        if server.process.poll() is None:
            stop_maas_serve(server)
    assert code == 0, server.log.read_text()
    # the ones in flight at the signal were answered after it, and every one was answered right
    assert sum(done > signalled for _, done in results) >= in_flight >= QUEUED
    for rows, _ in results:
        assert rows.shape == (16, 1000)
        np.testing.assert_allclose(rows, results[0][0], atol=1e-5)  # same photos
    assert not server.is_ready()
    late = ModelClient("resnet50", url=server.url(protocol), protocol=protocol, retry=NO_RETRIES)
    with pytest.raises(ServerUnavailableError), late:  # a caller after the stop may retry
        late.infer({"pixel_values": crops[:1]})
