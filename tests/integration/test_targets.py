"""Export targets: gates on real data, the choice of the served target, and what is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from maas.base.errors import ExportError
from maas.base.runtimes import RuntimeOptions, load_runner
from maas.export import ModelRepository, export_model, get_spec
from maas.export.exporter import build_candidates
from maas.export.manifest import load
from maas.export.targets import TARGETS, get_target
from maas.export.verify import run_batched, torch_runner
from tests.conftest import Exported


def test_reduced_precision_minilm_targets_fail_their_cosine_gate(exported: Exported) -> None:
    candidates = {c.target.name: c for c in exported.results["minilm"].candidates}
    for name in ("onnxruntime-int8", "openvino-int8"):
        assert candidates[name].status == "rejected"
        assert candidates[name].measures["min_cosine"] < 0.999
        assert "min cosine to fp32" in candidates[name].reasons[0]
    assert candidates["openvino-bf16"].status == "accepted"
    assert candidates["openvino-bf16"].measures["min_cosine"] >= 0.999


# README, Targets: reduced precision must keep top-1 agreement with fp32 ≥ 99 % and lose at most
# 0.5 points of held-out accuracy (digits_cnn).
MIN_TOP1_AGREEMENT = 0.99
MAX_ACCURACY_DROP = 0.005


def test_digits_reduced_precision_targets_record_agreement_and_accuracy_drop(
    exported: Exported, tmp_path: Path
) -> None:
    """Every reduced-precision artifact the gate passes keeps both promises, measured here."""
    result = exported.results["digits_cnn"]
    spec, built = result.spec, result.built
    reduced = [t for t in TARGETS.values() if t.reduced_precision and t.unavailable() is None]
    _, candidates = build_candidates(spec, built, reduced, tmp_path, seconds=0.01)
    assert built.eval_targets is not None
    inputs, labels = built.eval_inputs, built.eval_targets
    fp32 = run_batched(torch_runner(spec, built.module), inputs)["probabilities"].argmax(-1)
    accepted = [c for c in candidates if c.status == "accepted"]
    assert accepted, [(c.target.name, c.reasons) for c in candidates]  # not passing trivially
    for candidate in accepted:
        target = candidate.target
        runner = load_runner(
            target.runtime, candidate.folder / target.artifact, RuntimeOptions(target.precision)
        )
        ours = run_batched(runner.infer, inputs)["probabilities"].argmax(-1)
        agreement = float(np.mean(ours == fp32))
        drop = float(np.mean(fp32 == labels) - np.mean(ours == labels))
        assert agreement >= MIN_TOP1_AGREEMENT, target.name
        assert drop <= MAX_ACCURACY_DROP, target.name
        one_row = 1.0 / len(labels)  # what the gate recorded is what the artifact does
        assert candidate.measures["top1_agreement"] == pytest.approx(agreement, abs=one_row)
        assert candidate.measures["accuracy_drop"] == pytest.approx(drop, abs=one_row)
    for candidate in candidates:
        if candidate.status == "rejected":  # refused for breaking a promise, and not kept
            measures = candidate.measures
            assert (
                measures["top1_agreement"] < MIN_TOP1_AGREEMENT
                or measures["accuracy_drop"] > MAX_ACCURACY_DROP
            ), candidate.reasons
            assert not candidate.folder.exists()


PRECISION_ORDER = {"fp32": 0, "bf16": 1, "fp16": 1, "int8": 2}  # README: "the more precise"


def readme_choice(speeds: dict[str, float]) -> str:
    """README: the fastest accepted target; within 5 % of it, the more precise one."""
    fastest = max(speeds.values())
    close = [name for name, speed in speeds.items() if speed >= 0.95 * fastest]
    return min(close, key=lambda name: (PRECISION_ORDER[name.rsplit("-", 1)[1]], -speeds[name]))


def test_served_target_is_the_fastest_accepted_within_the_tie_margin(exported: Exported) -> None:
    """What is served (config, artifact, manifest) is the README's rule applied to the speeds
    the manifest records for every target."""
    manifest = load(exported.repository.manifest_path)["models"]
    for name in ("digits_cnn", "resnet50", "minilm"):
        record = manifest[name]["versions"]["1"]
        speeds = {
            target: max(row["samples_per_s"] for row in verdict["throughput"])
            for target, verdict in record["targets"].items()
            if verdict["status"] == "accepted"
        }
        expected = readme_choice(speeds)
        assert record["target"] == expected, (name, speeds)
        config = exported.repository.read_config(name)
        assert config.parameters["maas_target"].string_value == expected
        served = {path.name for path in exported.repository.version_dir(name, 1).iterdir()}
        assert get_target(expected).artifact in served


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
