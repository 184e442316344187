"""The one generic exporter: spec → torch → ONNX → verification → repository entry."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maas.errors import VerificationError

from . import manifest, triton_config
from .onnx_export import export_onnx
from .repository import ModelRepository
from .spec import BuiltModel, ModelSpec
from .triton_config import ONNX_FILE, PYTHON_FILE
from .verify import VerificationReport, onnxruntime_runner, torch_runner, verify

log = logging.getLogger("maas.export")


@dataclass
class ExportResult:
    """What one export produced."""

    spec: ModelSpec
    built: BuiltModel
    report: VerificationReport
    artifact: Path
    sha256: str
    models: tuple[str, ...]  # every repository entry written: classifier, preprocess, ensemble


@contextmanager
def step(model: str, what: str) -> Iterator[None]:
    """Log the start and duration of one export step."""
    log.info("%s: %s …", model, what)
    started = time.perf_counter()
    yield
    log.info("%s: %s done in %.1f s", model, what, time.perf_counter() - started)


def export_model(spec: ModelSpec, repository: ModelRepository, version: int = 1) -> ExportResult:
    """Build, convert and verify one model, then write it into the repository.

    Nothing is written to the repository unless every check passes.
    """
    with step(spec.name, "building the torch model"):
        built = spec.build()
    check_accuracy(spec, built)
    with tempfile.TemporaryDirectory(prefix=f"maas-export-{spec.name}-") as scratch:
        candidate = Path(scratch) / ONNX_FILE
        with step(spec.name, f"exporting ONNX (opset {spec.opset})"):
            export_onnx(spec, built.module, built.eval_inputs, candidate)
        with step(spec.name, f"verifying ONNX Runtime against torch on {built.eval_count} inputs"):
            report = verify(
                spec,
                torch_runner(spec, built.module),
                onnxruntime_runner(str(candidate)),
                built.eval_inputs,
            )
        artifact = repository.version_dir(spec.name, version) / ONNX_FILE
        artifact.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(candidate), artifact)
    models = write_entries(spec, built, repository)
    digest = manifest.sha256_of(artifact)
    manifest.record_model(
        repository.manifest_path,
        spec.name,
        manifest_entry(spec, built, report, artifact, digest, version, repository),
    )
    return ExportResult(spec, built, report, artifact, digest, models)


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
    spec: ModelSpec, built: BuiltModel, repository: ModelRepository
) -> tuple[str, ...]:
    """Config and labels of the model and, with preprocessing, its preprocess model and ensemble."""
    repository.write_config(triton_config.model_config(spec))
    if built.labels:
        repository.write_labels(spec.name, built.labels)
    preprocessing = spec.preprocessing
    if preprocessing is None:
        return (spec.name,)
    preprocess = repository.write_config(
        triton_config.preprocess_config(spec, preprocessing)
    ).parent.name
    code = repository.version_dir(preprocess, 1) / PYTHON_FILE
    code.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(preprocessing.triton_model, code)
    for filename, source in built.assets.items():
        shutil.copyfile(source, code.parent / filename)
    ensemble = repository.write_config(
        triton_config.ensemble_config(spec, preprocessing)
    ).parent.name
    repository.version_dir(ensemble, 1).mkdir(parents=True, exist_ok=True)
    if built.labels:
        repository.write_labels(ensemble, built.labels)
    return (spec.name, preprocess, ensemble)


def manifest_entry(
    spec: ModelSpec,
    built: BuiltModel,
    report: VerificationReport,
    artifact: Path,
    digest: str,
    version: int,
    repository: ModelRepository,
) -> dict[str, Any]:
    """The manifest's record of one exported model."""
    return {
        "description": spec.description,
        "weights": spec.weights,
        "source": built.source,
        "versions": {
            str(version): {
                "artifact": artifact.relative_to(repository.root).as_posix(),
                "format": "onnx",
                "opset": spec.opset,
                "sha256": digest,
                "bytes": artifact.stat().st_size,
                "metrics": built.metrics,
                "verification": {
                    "reference": "torch eager fp32",
                    "runtime": "onnxruntime CPUExecutionProvider",
                    "atol": spec.tolerance.atol,
                    "rtol": spec.tolerance.rtol,
                    **report.as_dict(),
                },
                "libraries": manifest.library_versions(),
            }
        },
    }
