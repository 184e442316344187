"""Served outputs against the PyTorch reference, over HTTP and gRPC, batched and unbatched."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maas.base.runtimes import RuntimeOptions, load_runner
from maas.clients import ImageClassifier, ModelClient, Protocol
from maas.export import get_spec
from maas.export.samples import write_held_out_digits, write_photos
from maas.export.selection import gate
from maas.export.verify import torch_runner
from tests.conftest import Exported, RunningServer, one_shot_models
from tests.integration.expectations import SERVED_MODEL_EXPECTATIONS


def first_rows(exported: Exported, name: str, count: int) -> dict[str, np.ndarray]:
    inputs = exported.results[name].built.eval_inputs
    return {input_name: array[:count] for input_name, array in inputs.items()}


@pytest.mark.parametrize("batch_size", [1, 5])
@pytest.mark.parametrize("name", one_shot_models())
def test_served_outputs_match_the_same_artifact_run_in_process(
    name: str, batch_size: int, protocol: Protocol, server: RunningServer, exported: Exported
) -> None:
    result = exported.results[name]
    batch = first_rows(exported, name, batch_size)
    runner = load_runner(
        result.target.runtime, result.artifact, RuntimeOptions(result.target.precision)
    )
    expected = runner.infer(batch)
    with ModelClient(name, url=server.url(protocol), protocol=protocol) as client:
        served = client.infer(batch)
    assert set(served) == set(expected)
    tolerance = SERVED_MODEL_EXPECTATIONS[name]
    for output, reference in expected.items():
        assert served[output].shape == (batch_size, *reference.shape[1:])
        np.testing.assert_allclose(
            served[output], reference, atol=tolerance.atol, rtol=tolerance.rtol
        )


@pytest.mark.parametrize("name", one_shot_models())
def test_served_outputs_pass_the_served_targets_gate_against_torch(
    name: str, protocol: Protocol, server: RunningServer, exported: Exported
) -> None:
    result = exported.results[name]
    batch = first_rows(exported, name, 16)
    expected = torch_runner(result.spec, result.built.module)(batch)
    with ModelClient(name, url=server.url(protocol), protocol=protocol) as client:
        served = client.infer(batch)
    built = replace(result.built, eval_targets=None)  # accuracy needs the whole held-out set
    failures, _ = gate(result.spec, result.target, built, expected, served)
    assert failures == []


def test_model_metadata_reports_declared_inputs(server: RunningServer, protocol: Protocol) -> None:
    with ModelClient("resnet50", url=server.url(protocol), protocol=protocol) as client:
        info = client.info()
    assert [(t.name, t.datatype, t.shape) for t in info.inputs] == [
        ("pixel_values", "FP32", (-1, 3, 224, 224))
    ]
    assert info.max_batch_size == get_spec("resnet50").batching.max_batch_size


def test_digits_ensemble_classifies_held_out_pngs_correctly(
    server: RunningServer, protocol: Protocol, tmp_path: Path
) -> None:
    digits = write_held_out_digits(tmp_path, 60)
    with ImageClassifier("digits_cnn", url=server.url(protocol), protocol=protocol) as classifier:
        results = classifier.classify([path for path, _ in digits], top_k=3)
    predicted = [int(labels[0].label) for labels in results]
    accuracy = np.mean(
        [guess == truth for guess, (_, truth) in zip(predicted, digits, strict=True)]
    )
    gate = SERVED_MODEL_EXPECTATIONS["digits_cnn"].min_ensemble_accuracy
    assert gate is not None and accuracy >= gate
    assert all(len(labels) == 3 for labels in results)
    assert all(labels[0].score >= labels[1].score >= labels[2].score for labels in results)


def test_digits_ensemble_agrees_with_classifier_on_the_same_pixels(
    server: RunningServer, exported: Exported, protocol: Protocol
) -> None:
    # Quantise as an 8-bit PNG does, so both paths see exactly the same pixels.
    pixels = np.round(exported.results["digits_cnn"].built.eval_inputs["pixels"][:20] * 255) / 255
    encoded = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(np.round(image[0] * 255).astype(np.uint8), mode="L").resize(
            (32, 32), Image.Resampling.NEAREST
        ).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    with ImageClassifier("digits_cnn", url=server.url(protocol), protocol=protocol) as classifier:
        from_bytes = classifier.classify(encoded, top_k=1)
        from_tensors = classifier.classify(list(pixels.astype(np.float32)), top_k=1)
    assert [r[0].label for r in from_bytes] == [r[0].label for r in from_tensors]
    np.testing.assert_allclose(
        [r[0].score for r in from_bytes], [r[0].score for r in from_tensors], atol=1e-5
    )


def test_resnet_ensemble_returns_five_labels_for_jpeg_photos(
    server: RunningServer, protocol: Protocol, tmp_path: Path
) -> None:
    photos = write_photos(tmp_path)
    with ImageClassifier("resnet50", url=server.url(protocol), protocol=protocol) as classifier:
        results = classifier.classify(photos, top_k=5)
    assert len(results) == len(photos)
    for ranked in results:
        assert len(ranked) == 5
        assert all(item.label == f"class_{item.index:03d}" for item in ranked)
        assert 0.0 < sum(item.score for item in ranked) <= 1.0 + 1e-5


def test_classification_extension_returns_labels_from_the_labels_file(
    server: RunningServer, exported: Exported, protocol: Protocol
) -> None:
    batch = exported.results["digits_cnn"].built.eval_inputs["pixels"][:4]
    targets = exported.results["digits_cnn"].built.eval_targets
    assert targets is not None
    with ModelClient("digits_cnn", url=server.url(protocol), protocol=protocol) as client:
        raw = client.infer({"pixels": batch}, outputs=["probabilities"], class_count=2)[
            "probabilities"
        ]
    assert raw.shape == (4, 2)
    top = [entry.decode().split(":") for entry in raw[:, 0]]
    assert [label for _, _, label in top] == [str(t) for t in targets[:4]]
    assert all(index == label for _, index, label in top)


@pytest.mark.parametrize("model", ["digits_cnn", "resnet50"])
def test_the_one_output_view_serves_what_nvidia_image_client_expects(
    server: RunningServer, exported: Exported, protocol: Protocol, model: str
) -> None:
    """`<model>_scores`, asked as NVIDIA's image_client.py asks: metadata, then top classes."""
    (name,) = exported.results[model].built.eval_inputs
    batch = exported.results[model].built.eval_inputs[name][:2]
    with ModelClient(f"{model}_scores", url=server.url(protocol), protocol=protocol) as view:
        info = view.info()  # the server's metadata and config, as image_client reads them
        assert len(info.inputs) == 1 and len(info.inputs[0].shape) == 3 + 1  # batch first
        (output,) = info.outputs
        assert output.datatype == "FP32" and output.name == "probabilities"
        top = view.infer({name: batch}, outputs=["probabilities"], class_count=3)["probabilities"]
    with ModelClient(model, url=server.url(protocol), protocol=protocol) as classifier:
        probabilities = classifier.infer({name: batch}, outputs=["probabilities"])["probabilities"]
    assert top.shape == (2, 3)
    for row, expected in zip(top, probabilities, strict=True):
        score, index, label = row[0].decode().split(":")  # how image_client prints them
        assert int(index) == int(expected.argmax()) and label
        assert float(score) == pytest.approx(float(expected.max()), abs=1e-5)
