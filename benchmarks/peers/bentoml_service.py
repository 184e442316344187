"""The BentoML peer: one service, one batchable API per task, as BentoML's docs recommend.

`bentoml serve maas.benchmarks.peers.bentoml_service:MaasPeer`, with the task and the batching
settings in the environment (BentoML reads its decorators at import). Adaptive batching
(`batchable=True`) merges concurrent calls up to `max_batch_size`; `max_latency_ms` is the
latency budget past which BentoML refuses a request (503), so it is set far above any queue
this benchmark builds. Each of `workers` processes loads the artifact and batches on its own.
"""

from __future__ import annotations

import os
from pathlib import Path

import bentoml
import numpy as np

from maas.benchmarks.peers.tasks import TASKS
from maas.benchmarks.peers.work import PeerWork, as_json

WORKERS = int(os.environ.get("MAAS_PEER_WORKERS", "1"))
MAX_LATENCY_MS = int(os.environ.get("MAAS_PEER_MAX_LATENCY_MS", "60000"))


def batching(task: str) -> dict[str, object]:
    """The adaptive batching settings of one task's API."""
    return {
        "batchable": True,
        "max_batch_size": TASKS[task].max_batch,
        "max_latency_ms": MAX_LATENCY_MS,
    }


@bentoml.service(workers=WORKERS, traffic={"timeout": 120}, logging={"access": {"enabled": False}})
class MaasPeer:
    """Serves the task named by MAAS_PEER_TASK with the artifact maas serves."""

    def __init__(self) -> None:
        self.work = PeerWork.from_environment()

    @bentoml.api(**batching("resnet50-jpeg"))  # type: ignore[untyped-decorator]
    def resnet50_jpeg(self, images: list[Path]) -> list[dict[str, list[float]]]:
        """Logits and probabilities of each uploaded image."""
        return [as_json(outputs) for outputs in self.work.images([p.read_bytes() for p in images])]

    @bentoml.api(batch_dim=0, **batching("resnet50-tensor"))  # type: ignore[untyped-decorator]
    def resnet50_tensor(self, pixels: np.ndarray) -> np.ndarray:
        """[n, 2, 1000]: logits and probabilities of each preprocessed image."""
        results = self.work.tensors(pixels)
        return np.stack([np.concatenate([r["logits"], r["probabilities"]]) for r in results])

    @bentoml.api(**batching("minilm-text"))  # type: ignore[untyped-decorator]
    def minilm_text(self, texts: list[str]) -> np.ndarray:
        """[n, 384]: the sentence embedding of each text."""
        return np.concatenate([outputs["embeddings"] for outputs in self.work.texts(texts)])
