"""Two versions of one model served side by side; each answers with its own artifact."""

from __future__ import annotations

import numpy as np

from maas.clients import ModelClient, Protocol
from maas.export.verify import cosine_similarities, torch_runner
from tests.conftest import VERSIONED_MODEL, VERSIONS, Exported, RunningServer


def reference(exported: Exported, version: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    result = exported.results[f"{VERSIONED_MODEL}@{version}"]
    batch = {name: array[:6] for name, array in result.built.eval_inputs.items()}
    return batch, torch_runner(result.spec, result.built.module)(batch)["embeddings"]


def test_each_pinned_version_answers_with_its_own_weights(
    server: RunningServer, exported: Exported, protocol: Protocol
) -> None:
    answers = {}
    for version in VERSIONS:
        batch, expected = reference(exported, version)
        url = server.url(protocol)
        with ModelClient(
            VERSIONED_MODEL, url=url, protocol=protocol, version=str(version)
        ) as client:
            answers[version] = client.infer(batch)["embeddings"]
        assert cosine_similarities(expected, answers[version]).min() >= 0.999
    assert cosine_similarities(answers[1], answers[2]).max() < 0.99  # really different models


def test_unpinned_requests_get_the_newest_version(
    server: RunningServer, exported: Exported, protocol: Protocol
) -> None:
    batch, newest = reference(exported, max(VERSIONS))
    with ModelClient(VERSIONED_MODEL, url=server.url(protocol), protocol=protocol) as client:
        assert set(client.info().versions) == {str(v) for v in VERSIONS}
        served = client.infer(batch)["embeddings"]
    assert cosine_similarities(newest, served).min() >= 0.999


def test_every_version_shares_the_first_versions_target(exported: Exported) -> None:
    targets = {exported.results[f"{VERSIONED_MODEL}@{v}"].target.name for v in VERSIONS}
    assert len(targets) == 1
