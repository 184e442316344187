"""Export targets: gates on real data, the choice of the served target, and what is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from maas.base.errors import ExportError
from maas.export import ModelRepository, export_model, get_spec
from maas.export.manifest import load
from tests.conftest import Exported


def test_reduced_precision_minilm_targets_fail_their_cosine_gate(exported: Exported) -> None:
    candidates = {c.target.name: c for c in exported.results["minilm"].candidates}
    for name in ("onnxruntime-int8", "openvino-int8"):
        assert candidates[name].status == "rejected"
        assert candidates[name].measures["min_cosine"] < 0.999
        assert "min cosine to fp32" in candidates[name].reasons[0]
    assert candidates["openvino-bf16"].status == "accepted"
    assert candidates["openvino-bf16"].measures["min_cosine"] >= 0.999


def test_digits_reduced_precision_targets_record_agreement_and_accuracy_drop(
    exported: Exported,
) -> None:
    for candidate in exported.results["digits_cnn"].candidates:
        if candidate.status != "accepted" or not candidate.target.reduced_precision:
            continue
        assert candidate.measures["top1_agreement"] >= 0.99
        assert candidate.measures["accuracy_drop"] <= 0.005


def test_served_target_is_the_fastest_accepted_within_the_tie_margin(exported: Exported) -> None:
    for name in ("digits_cnn", "resnet50", "minilm"):
        result = exported.results[name]
        accepted = [c for c in result.candidates if c.status == "accepted"]
        chosen = next(c for c in accepted if c.target == result.target)
        assert chosen.best >= 0.95 * max(c.best for c in accepted)


def test_tensorrt_targets_are_skipped_with_a_reason_without_a_gpu(exported: Exported) -> None:
    skipped = {
        c.target.name: c for c in exported.results["digits_cnn"].candidates if c.status == "skipped"
    }
    assert set(skipped) >= {"tensorrt-fp16", "tensorrt-int8"}
    assert all(c.reasons for c in skipped.values())


def test_manifest_records_every_targets_verdict_and_the_served_one(exported: Exported) -> None:
    record = load(exported.repository.manifest_path)["models"]["resnet50"]["versions"]["1"]
    assert record["target"] == exported.results["resnet50"].target.name
    assert record["sha256"] == exported.results["resnet50"].sha256
    assert set(record["targets"]) >= {"onnxruntime-fp32", "openvino-bf16", "tensorrt-fp16"}
    assert record["targets"]["onnxruntime-fp32"]["throughput"][0]["batch"] == 1


def test_forcing_a_target_that_fails_its_gate_writes_nothing(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path)
    with pytest.raises(ExportError, match="no target passed: onnxruntime-int8: min cosine to fp32"):
        export_model(get_spec("minilm"), repository, targets=["onnxruntime-int8"])
    assert not any(tmp_path.iterdir())


def test_a_new_version_must_use_the_models_target(tmp_path: Path, exported: Exported) -> None:
    repository = ModelRepository(tmp_path)
    export_model(get_spec("digits_cnn"), repository, targets=["onnxruntime-fp32"])
    with pytest.raises(ExportError, match="versions \\[1\\] are served with onnxruntime-fp32"):
        export_model(get_spec("digits_cnn"), repository, version=2, targets=["openvino-bf16"])
