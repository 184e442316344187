"""Text services through the live server: embeddings against sentence-transformers, classifiers."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from maas.base.runtimes import RuntimeOptions, load_runner
from maas.base.sentences import SENTENCES
from maas.clients import (
    AsyncTextClassifier,
    AsyncTextEmbedder,
    Protocol,
    TextClassifier,
    TextEmbedder,
)
from maas.export.models.minilm import packaged_model_dir
from maas.export.targets import BuildContext, get_target
from maas.export.verify import cosine_similarities, run_batched, torch_runner
from tests.conftest import Exported, RunningServer
from tests.tiny_bert import LABELS

MIN_COSINE = 0.9999  # the fp32 path
MIN_COSINE_REDUCED = 0.999  # the accuracy gate of reduced-precision targets
FP32_MODEL = "minilm_fp32"  # minilm exported with the onnxruntime-fp32 target forced


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """Embeddings from sentence-transformers itself, on the packaged model folder."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(packaged_model_dir()), device="cpu")
    return np.asarray(model.encode(list(SENTENCES), batch_size=16), dtype=np.float32)


def test_reference_set_is_large_and_varied() -> None:
    assert len(SENTENCES) >= 50
    assert any(len(text.split()) > 256 for text in SENTENCES)  # over max_length: truncated
    assert any(not text.isascii() for text in SENTENCES)


def test_minilm_matches_sentence_transformers_in_one_batched_request(
    server: RunningServer, protocol: Protocol, reference: np.ndarray
) -> None:
    with TextEmbedder(FP32_MODEL, url=server.url(protocol), protocol=protocol) as embedder:
        served = embedder.embed(list(SENTENCES))
    assert served.shape == (len(SENTENCES), 384)
    assert cosine_similarities(reference, served).min() >= MIN_COSINE


def test_minilm_matches_sentence_transformers_under_concurrent_single_requests(
    server: RunningServer, protocol: Protocol, reference: np.ndarray
) -> None:
    def embed_one(text: str) -> np.ndarray:
        with TextEmbedder(FP32_MODEL, url=server.url(protocol), protocol=protocol) as embedder:
            row: np.ndarray = embedder.embed([text])[0]
        return row

    with ThreadPoolExecutor(max_workers=12) as pool:
        served = np.stack(list(pool.map(embed_one, SENTENCES)))
    assert cosine_similarities(reference, served).min() >= MIN_COSINE


def test_async_embedder_matches_sentence_transformers(
    server: RunningServer, protocol: Protocol, reference: np.ndarray
) -> None:
    async def embed_all() -> np.ndarray:
        async with AsyncTextEmbedder(
            FP32_MODEL, url=server.url(protocol), protocol=protocol
        ) as embedder:
            rows = await asyncio.gather(*(embedder.embed([text]) for text in SENTENCES))
        return np.concatenate(rows)

    served = asyncio.run(embed_all())
    assert cosine_similarities(reference, served).min() >= MIN_COSINE


@pytest.fixture(scope="module")
def int8_embeddings(exported: Exported, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """What minilm's onnxruntime-int8 target computes for SENTENCES, built here from the
    verified fp32 ONNX file the way export builds it."""
    target = get_target("onnxruntime-int8")
    result = exported.results[FP32_MODEL]
    folder = tmp_path_factory.mktemp(target.name)
    onnx = exported.repository.version_dir(FP32_MODEL, 1) / "model.onnx"
    target.build(BuildContext(result.spec, onnx, folder, result.built.eval_inputs))
    runner = load_runner(target.runtime, folder / target.artifact, RuntimeOptions(target.precision))
    embeddings: np.ndarray = run_batched(runner.infer, result.built.eval_inputs)["embeddings"]
    return embeddings


def test_default_minilm_target_stays_within_its_gate_of_sentence_transformers(
    server: RunningServer,
    exported: Exported,
    protocol: Protocol,
    reference: np.ndarray,
    int8_embeddings: np.ndarray,
) -> None:
    with TextEmbedder("minilm", url=server.url(protocol), protocol=protocol) as embedder:
        served = embedder.embed(list(SENTENCES))
    assert cosine_similarities(reference, served).min() >= MIN_COSINE_REDUCED
    # The gate is what keeps that true: the int8 target it rejects would break it.
    assert cosine_similarities(reference, int8_embeddings).min() < MIN_COSINE_REDUCED
    rejected = exported.results["minilm"].candidates
    assert any(c.target.name == "onnxruntime-int8" and c.status == "rejected" for c in rejected)


def test_tiny_classifier_returns_id2label_labels_matching_torch(
    server: RunningServer, exported: Exported, protocol: Protocol
) -> None:
    built = exported.results["tiny_bert_classifier"].built
    expected = torch_runner(exported.results["tiny_bert_classifier"].spec, built.module)(
        built.eval_inputs
    )
    with TextClassifier(
        "tiny_bert_classifier", url=server.url(protocol), protocol=protocol
    ) as classifier:
        ranked = classifier.classify(list(SENTENCES), top_k=3)
    assert [row[0].label for row in ranked] == [
        LABELS[i] for i in expected["probabilities"].argmax(-1)
    ]
    assert all(sorted(item.label for item in row) == sorted(LABELS.values()) for row in ranked)
    np.testing.assert_allclose(
        [row[0].score for row in ranked], expected["probabilities"].max(-1), atol=1e-5
    )


def test_tiny_embedder_exported_from_a_folder_matches_torch(
    server: RunningServer, exported: Exported, protocol: Protocol
) -> None:
    result = exported.results["tiny_bert_embedder"]
    expected = torch_runner(result.spec, result.built.module)(result.built.eval_inputs)[
        "embeddings"
    ]
    with TextEmbedder(
        "tiny_bert_embedder", url=server.url(protocol), protocol=protocol
    ) as embedder:
        served = embedder.embed(list(SENTENCES))
    assert cosine_similarities(expected, served).min() >= MIN_COSINE


def test_async_classifier_matches_sync_classifier(
    server: RunningServer, protocol: Protocol
) -> None:
    texts = list(SENTENCES[:6])

    async def classify() -> list[list[str]]:
        async with AsyncTextClassifier(
            "tiny_bert_classifier", url=server.url(protocol), protocol=protocol
        ) as classifier:
            ranked = await classifier.classify(texts, top_k=2)
        return [[item.label for item in row] for row in ranked]

    with TextClassifier(
        "tiny_bert_classifier", url=server.url(protocol), protocol=protocol
    ) as sync:
        expected = [[item.label for item in row] for row in sync.classify(texts, top_k=2)]
    assert asyncio.run(classify()) == expected
