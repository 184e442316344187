"""The one generic exporter: spec → torch → ONNX → verification → targets → repository entry."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from maas.base.errors import ExportError, VerificationError
from maas.base.triton.config import string_parameters
from maas.base.triton.parameters import ModelParameters
from maas.base.triton.repository import ModelRepository

from . import manifest, triton_config
from .generation import verify_cached_generation
from .generation_service import write_generation_service
from .onnx_export import export_onnx
from .selection import MEASURE_SECONDS, Candidate, batch_sizes, evaluate, retime, select
from .spec import BuiltModel, ModelSpec
from .targets import TARGETS, Target, get_target
from .triton_config import ONNX_FILE
from .verify import (
    VerificationReport,
    onnxruntime_runner,
    run_batched,
    torch_runner,
    verify_outputs,
)

log = logging.getLogger("maas.export")


@dataclass
class ExportResult:
    """What one export produced."""

    spec: ModelSpec
    built: BuiltModel
    report: VerificationReport  # the fp32 ONNX file against torch
    target: Target  # what is served
    candidates: list[Candidate]  # every target tried, with its verdict and speed
    artifact: Path
    sha256: str  # of every file in the version folder
    models: tuple[str, ...]  # every repository entry written: model, preprocess, ensemble


@contextmanager
def step(model: str, what: str) -> Iterator[None]:
    """Log the start and duration of one export step."""
    log.info("%s: %s …", model, what)
    started = time.perf_counter()
    yield
    log.info("%s: %s done in %.1f s", model, what, time.perf_counter() - started)


def export_model(
    spec: ModelSpec,
    repository: ModelRepository,
    version: int = 1,
    targets: Sequence[str] | None = None,
) -> ExportResult:
    """Build, convert and verify one model, pick its fastest verified target, write it.

    targets: names from the target registry to try (default: all; one name forces it).
    A target the repository already records for the model is kept unless another is clearly
    faster (`selection.choose`). Nothing is written to the repository unless the chosen
    artifact passed every check.
    """
    tried = targets_to_try(repository, spec, version, targets)
    recorded = recorded_target(repository, spec.name)
    with step(spec.name, "building the torch model"):
        built = spec.build()
    check_accuracy(spec, built)
    with tempfile.TemporaryDirectory(prefix=f"maas-export-{spec.name}-") as scratch:
        report, candidates = build_candidates(spec, built, tried, Path(scratch))
        chosen = select(
            spec.name,
            candidates,
            recorded,
            lambda pair: retime(pair, built.eval_inputs, batch_sizes(spec)),
        )
        if chosen is None:
            raise ExportError(f"{spec.name}: no target passed: {rejections(candidates)}")
        log.info(
            "%s: serving %s (%.1f samples/s at best)", spec.name, chosen.target.name, chosen.best
        )
        artifact = install_artifact(repository, spec.name, version, chosen, built.version_files)
    models = write_entries(spec, built, repository, chosen.target)
    digest = manifest.folder_sha256(artifact.parent)
    entry = manifest_entry(spec, built, report, chosen, candidates, artifact, digest, repository)
    manifest.record_version(repository.manifest_path, spec.name, version, entry)
    return ExportResult(spec, built, report, chosen.target, candidates, artifact, digest, models)


def build_candidates(
    spec: ModelSpec,
    built: BuiltModel,
    targets: Sequence[Target],
    scratch: Path,
    seconds: float = MEASURE_SECONDS,
) -> tuple[VerificationReport, list[Candidate]]:
    """Export and verify fp32 ONNX, then build, gate and time every target from it."""
    onnx = scratch / ONNX_FILE
    with step(spec.name, f"exporting ONNX (opset {spec.opset})"):
        export_onnx(spec, built.module, built.trace_inputs or built.eval_inputs, onnx)
    with step(spec.name, f"verifying ONNX Runtime against torch on {built.eval_count} inputs"):
        # The torch outputs are also what every target is gated against: compute them once.
        expected = run_batched(torch_runner(spec, built.module), built.eval_inputs)
        actual = run_batched(onnxruntime_runner(str(onnx)), built.eval_inputs)
        report = verify_outputs(spec, expected, actual)
    if spec.cache is not None:
        with step(spec.name, "verifying a cached generation (prefill + decode steps)"):
            generation = verify_cached_generation(spec, built.module, onnx, built.prompts)
        report = replace(
            report,
            outputs=report.outputs + generation.outputs,
            top1_agreement=generation.top1_agreement,
        )
    candidates = []
    for target in targets:
        reason = target.unavailable()
        if reason is not None:  # recorded as skipped, with the reason, in one line
            log.info("%s: %s skipped: %s", spec.name, target.name, reason)
            candidates.append(evaluate(spec, target, built, onnx, expected, scratch, seconds))
            continue
        with step(spec.name, f"building, gating and timing {target.name}"):
            candidates.append(evaluate(spec, target, built, onnx, expected, scratch, seconds))
    return report, candidates


def targets_to_try(
    repository: ModelRepository, spec: ModelSpec, version: int, requested: Sequence[str] | None
) -> list[Target]:
    """Requested targets; a model's other versions pin its target (one config, one backend).

    A spec that lists its targets allows only those.
    """
    name = spec.name
    allowed = list(spec.targets or TARGETS)
    refused = [t for t in requested or () if t not in allowed]
    if refused:
        raise ExportError(
            f"{name} cannot be served with {', '.join(refused)}; its targets: {', '.join(allowed)}"
        )
    chosen = [get_target(t) for t in requested or allowed]
    others = [v for v in existing_versions(repository, name) if v != version]
    if not others:
        return chosen
    pinned = recorded_target(repository, name)
    if pinned is None:
        raise ExportError(
            f"{name}: its config records no maas_target to build version {version} for"
        )
    if requested and any(t.name != pinned for t in chosen):
        raise ExportError(
            f"{name}: versions {others} are served with {pinned}; every version of a model "
            f"shares one config and backend, so version {version} must use {pinned} too"
        )
    return [get_target(pinned)]


def recorded_target(repository: ModelRepository, name: str) -> str | None:
    """The target the repository's config records for a model, if it has a config."""
    if not repository.config_path(name).is_file():
        return None
    recorded = ModelParameters.read(string_parameters(repository.read_config(name))).target
    return recorded or None


def existing_versions(repository: ModelRepository, name: str) -> list[int]:
    """Versions already exported for a model."""
    if not repository.config_path(name).is_file():
        return []
    return repository.versions(name)


def rejections(candidates: list[Candidate]) -> str:
    """Every target's reason, for the error when none passes."""
    return "; ".join(f"{c.target.name}: {', '.join(c.reasons) or c.status}" for c in candidates)


def install_artifact(
    repository: ModelRepository,
    name: str,
    version: int,
    chosen: Candidate,
    extras: dict[str, Path] | None = None,
) -> Path:
    """Replace the version folder's files with the chosen target's, and the extras beside them."""
    folder = repository.version_dir(name, version)
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(chosen.folder, folder)
    for filename, source in (extras or {}).items():
        if source.is_dir():
            shutil.copytree(source, folder / filename)
        else:
            shutil.copyfile(source, folder / filename)
    return folder / chosen.target.artifact


def check_accuracy(spec: ModelSpec, built: BuiltModel) -> None:
    """Refuse a model whose held-out accuracy is under the spec's gate."""
    accuracy = built.metrics.get("held_out_accuracy")
    if spec.min_accuracy is None or accuracy is None:
        return
    log.info("%s: held-out accuracy %.4f (gate %.2f)", spec.name, accuracy, spec.min_accuracy)
    if accuracy < spec.min_accuracy:
        raise VerificationError(
            spec.name, [f"held-out accuracy {accuracy:.4f} < required {spec.min_accuracy:.4f}"]
        )


def write_entries(
    spec: ModelSpec, built: BuiltModel, repository: ModelRepository, target: Target
) -> tuple[str, ...]:
    """Configs and labels: the model, its views, its companions or generation service."""
    repository.write_config(triton_config.model_config(spec, target))
    if built.labels:
        repository.write_labels(spec.name, built.labels)
    written: tuple[str, ...] = (spec.name,)
    if triton_config.has_scores_view(spec) and built.labels:
        view = repository.write_config(triton_config.scores_config(spec)).parent.name
        repository.version_dir(view, 1).mkdir(parents=True, exist_ok=True)
        repository.write_labels(view, built.labels)
        written += (view,)
    if spec.task == "text-generation":
        written += (write_generation_service(repository, spec.name),)
    preprocessing = spec.preprocessing
    if preprocessing is None:
        return written
    config = triton_config.preprocess_config(spec, preprocessing)
    preprocess = repository.write_config(config).parent.name
    code = preprocessing.triton_model.install(repository.version_dir(preprocess, 1))
    for filename, source in built.assets.items():
        shutil.copyfile(source, code.parent / filename)
    config = triton_config.ensemble_config(spec, preprocessing)
    ensemble = repository.write_config(config).parent.name
    repository.version_dir(ensemble, 1).mkdir(parents=True, exist_ok=True)
    if built.labels:
        repository.write_labels(ensemble, built.labels)
    return (*written, preprocess, ensemble)


def manifest_entry(
    spec: ModelSpec,
    built: BuiltModel,
    report: VerificationReport,
    chosen: Candidate,
    candidates: list[Candidate],
    artifact: Path,
    digest: str,
    repository: ModelRepository,
) -> dict[str, Any]:
    """The manifest's record of one exported version."""
    return {
        "description": spec.description,
        "weights": spec.weights,
        "source": built.source,
        "metrics": built.metrics,
        "target": chosen.target.name,
        "artifact": artifact.relative_to(repository.root).as_posix(),
        "sha256": digest,  # over every file of the version folder
        "bytes": sum(path.stat().st_size for path in artifact.parent.iterdir()),
        "opset": spec.opset,
        "onnx_verification": {
            "reference": "torch eager fp32",
            "runtime": "onnxruntime CPUExecutionProvider fp32",
            "atol": spec.tolerance.atol,
            "rtol": spec.tolerance.rtol,
            **report.as_dict(),
        },
        "targets": {candidate.target.name: candidate.as_dict() for candidate in candidates},
        "libraries": manifest.library_versions(),
    }
