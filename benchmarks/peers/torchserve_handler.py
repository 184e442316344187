"""The TorchServe peer's handler: module-level `handle`, batches from `batch_size`.

TorchServe's frontend forms batches of up to `batchSize` requests within `maxBatchDelay` ms
(model-config.yaml in the archive) and hands each to `handle` as a list of requests whose
`body` is the raw upload; it answers one JSON document per request. The artifact is loaded
once per worker, on the first call, as TorchServe's custom-handler guide does it.
"""

from __future__ import annotations

from typing import Any

from maas.benchmarks.peers.work import PeerWork

_work: list[PeerWork] = []


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[dict[str, list[float]]] | None:
    """TorchServe's entry point: None for the initial probe, else one answer per request."""
    if not _work:
        _work.append(PeerWork.from_environment())
    if data is None:
        return None
    return _work[0].raw_bodies([request.get("body") or request.get("data") for request in data])
