"""SIGTERM to `maas serve` lets in-flight requests finish, then exits cleanly."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from maas.clients import ModelClient
from tests.conftest import Exported, start_maas_serve, stop_maas_serve


def test_sigterm_finishes_in_flight_requests_then_exits_zero(
    exported: Exported, tmp_path: Path
) -> None:
    # gRPC only: over HTTP through the front, 2 of 6 runs here had a client refused (open).
    server = start_maas_serve(exported.repository.root, tmp_path)
    photos = exported.results["resnet50"].built.eval_inputs["pixel_values"][
        :8
    ]  # ~1 s of work on two cores

    def infer_batch(_: int) -> np.ndarray:
        with ModelClient("resnet50", url=server.grpc_url, protocol="grpc") as client:
            return client.infer({"pixel_values": photos}, outputs=["probabilities"])[
                "probabilities"
            ]

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(infer_batch, i) for i in range(4)]
        time.sleep(0.5)  # the requests are queued or running when the signal arrives
        code = stop_maas_serve(server)
        results = [future.result(timeout=60) for future in futures]
    assert code == 0, server.log.read_text()
    assert all(result.shape == (8, 1000) for result in results)
    assert not server.is_ready()
