"""What every peer computes: the artifact maas serves, run by the serving adapter's own core.

A peer's handler gets a list of requests its batcher formed and hands them here, so each peer
decodes, preprocesses, tokenizes and infers with the very code, artifact, precision and thread
count that maas's Triton runs; only the serving around it differs. Framework-free: the peers'
service modules import this, never the other way round.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maas.base.served.adapter import ServedModelRunner
from maas.base.triton.repository import ModelRepository

from ..workloads import image_preprocessor, text_tokenizer
from .tasks import TASKS

Arrays = dict[str, np.ndarray]
TENSOR_SHAPE = (3, 224, 224)  # ResNet-50's preprocessed image


@dataclass(frozen=True)
class PeerEnvironment:
    """What a peer process serves, passed through its environment (peers start as commands)."""

    repository: Path
    task: str
    threads: int  # runtime threads per worker; 0: the served config's own setting

    def variables(self) -> dict[str, str]:
        """The environment variables that carry these settings."""
        return {
            "MAAS_REPOSITORY": str(self.repository.resolve()),
            "MAAS_PEER_TASK": self.task,
            "MAAS_PEER_THREADS": str(self.threads),
        }

    @classmethod
    def from_environment(cls) -> PeerEnvironment:
        """The settings a peer process was started with."""
        return cls(
            Path(os.environ.get("MAAS_REPOSITORY", "model_repository")),
            os.environ.get("MAAS_PEER_TASK", "resnet50-jpeg"),
            int(os.environ.get("MAAS_PEER_THREADS", "0")),
        )


class PeerWork:
    """Loads the task's artifact once; runs formed batches of decoded requests."""

    def __init__(self, settings: PeerEnvironment) -> None:
        self.task = TASKS[settings.task]
        repository = ModelRepository(settings.repository)
        threads = settings.threads or None
        self.runner = ServedModelRunner.for_repository(
            repository, self.task.artifact, threads=threads
        )
        self.input = self.runner.signature.inputs[0]
        if self.task.kind == "image":
            self.preprocess = image_preprocessor(repository, self.task.artifact).preprocess
        if self.task.kind == "text":
            self.tokenizer = text_tokenizer(repository, self.task.artifact)

    @classmethod
    def from_environment(cls) -> PeerWork:
        """The work a peer process was started for."""
        return cls(PeerEnvironment.from_environment())

    def images(self, encoded: list[bytes]) -> list[Arrays]:
        """Decode and preprocess each image as the server's preprocess model does, then infer."""
        pixels = np.stack([self.preprocess(image, index) for index, image in enumerate(encoded)])
        return self.tensors(pixels)

    def tensors(self, pixels: np.ndarray) -> list[Arrays]:
        """One runtime call on a [n, 3, 224, 224] batch; per-request outputs back."""
        return self.runner.run([{self.input: row[None]} for row in pixels])

    def texts(self, sentences: list[str]) -> list[Arrays]:
        """Tokenize each sentence as the server's tokenizer does; padded and run as served."""
        feeds = []
        for sentence in sentences:
            ids, mask = self.tokenizer.tokenize([sentence])
            feeds.append({"input_ids": ids, "attention_mask": mask})
        return self.runner.run(feeds)

    def raw_bodies(self, bodies: list[Any]) -> list[dict[str, list[float]]]:
        """Requests as raw HTTP bodies (Ray Serve, TorchServe): each one's outputs as JSON.

        Images come as JPEG bytes, tensors as float32 bytes, text as {"text": ...}, which a
        server may already have parsed into a dict.
        """
        if self.task.kind == "image":
            results = self.images([bytes(body) for body in bodies])
        elif self.task.kind == "image-tensor":
            rows = [np.frombuffer(bytes(body), np.float32) for body in bodies]
            results = self.tensors(np.stack(rows).reshape(len(rows), *TENSOR_SHAPE))
        else:
            documents = [body if isinstance(body, dict) else json.loads(body) for body in bodies]
            results = self.texts([document["text"] for document in documents])
        return [as_json(outputs) for outputs in results]


def as_json(outputs: Arrays) -> dict[str, list[float]]:
    """One request's outputs as JSON lists, what the peers' HTTP answers carry."""
    return {name: values.reshape(-1).tolist() for name, values in outputs.items()}
