"""asyncio clients against the live server, and deadlines that really fire."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from maas.clients import (
    AsyncImageClassifier,
    AsyncModelClient,
    InferenceTimeoutError,
    ModelClient,
    ModelNotFoundError,
    Protocol,
    ServerUnavailableError,
)
from maas.export.samples import write_held_out_digits
from tests.conftest import Exported, RunningServer


def test_async_classifier_labels_concurrent_pngs_correctly(
    server: RunningServer, protocol: Protocol, tmp_path: Path
) -> None:
    digits = write_held_out_digits(tmp_path, 12)

    async def classify_all() -> list[str]:
        async with AsyncImageClassifier(
            "digits_cnn",
            url=server.url(protocol),
            protocol=protocol,
        ) as classifier:
            answers = await asyncio.gather(
                *(classifier.classify([path], top_k=1) for path, _ in digits)
            )
        return [answer[0][0].label for answer in answers]

    labels = asyncio.run(classify_all())
    assert sum(label == str(truth) for label, (_, truth) in zip(labels, digits, strict=True)) >= 11


def test_async_model_client_matches_sync_client(
    server: RunningServer, exported: Exported, protocol: Protocol
) -> None:
    batch = exported.results["digits_cnn"].built.eval_inputs["pixels"][:3]

    async def infer() -> np.ndarray:
        async with AsyncModelClient(
            "digits_cnn", url=server.url(protocol), protocol=protocol
        ) as client:
            return (await client.infer({"pixels": batch}))["logits"]

    with ModelClient("digits_cnn", url=server.url(protocol), protocol=protocol) as client:
        expected = client.infer({"pixels": batch})["logits"]
    np.testing.assert_allclose(asyncio.run(infer()), expected, atol=1e-6)


def test_async_model_client_raises_not_found_for_unknown_model(
    server: RunningServer, protocol: Protocol
) -> None:
    async def infer() -> None:
        async with AsyncModelClient(
            "no_such_model", url=server.url(protocol), protocol=protocol
        ) as client:
            await client.infer({"pixels": np.zeros((1, 1, 8, 8), np.float32)})

    with pytest.raises(ModelNotFoundError, match="no_such_model"):
        asyncio.run(infer())


def test_client_raises_timeout_when_the_deadline_is_shorter_than_the_work(
    server: RunningServer, exported: Exported, protocol: Protocol
) -> None:
    # 32 texts of 256 tokens through fp32 ONNX Runtime: a second or more on two cores.
    inputs = exported.results["minilm_fp32"].built.eval_inputs
    row = int(inputs["attention_mask"].sum(axis=1).argmax())
    longest = {name: np.repeat(array[row : row + 1], 32, axis=0) for name, array in inputs.items()}
    url = server.url(protocol)
    with (
        ModelClient("minilm_fp32", url=url, protocol=protocol, timeout_s=0.1) as client,
        pytest.raises(InferenceTimeoutError, match="minilm_fp32"),
    ):
        client.infer(longest)
    assert server.is_ready()


def test_client_raises_unavailable_when_nothing_listens(protocol: Protocol) -> None:
    with (
        ModelClient("digits_cnn", url="127.0.0.1:9", protocol=protocol, timeout_s=3) as client,
        pytest.raises(ServerUnavailableError),
    ):
        client.infer({"pixels": np.zeros((1, 1, 8, 8), np.float32)})
