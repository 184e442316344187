"""`maas export --check`: re-export into a scratch repository and compare with what is committed.

Policy: configs and labels must be byte-identical. The served artifact must hash to what the
manifest records; where it does not and the recorded artifact is present, both are run on the
spec's evaluation inputs and must agree within the spec's fp32 tolerances. The held-out
accuracy must be identical (training is deterministic).
"""

from __future__ import annotations

import filecmp
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from maas.base.errors import ExportError
from maas.base.runtimes import RuntimeOptions, load_runner
from maas.base.triton.config import LABELS_FILE
from maas.base.triton.repository import CONFIG_FILE, ModelRepository

from . import manifest
from .exporter import ExportResult, export_model
from .registry import get_spec
from .verify import compare_outputs, run_batched


@dataclass
class CheckResult:
    """How one re-exported model version compares with the committed one."""

    model: str
    version: int
    verdict: str = "identical"  # identical | equivalent | different
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Identical, or within tolerance."""
        return self.verdict != "different"


def recorded_versions(
    repository: ModelRepository, names: list[str] | None
) -> list[tuple[str, int]]:
    """(model, version) pairs the manifest records, limited to names when given."""
    models = manifest.load(repository.manifest_path).get("models", {})
    if not models:
        raise ExportError(f"nothing to check: {repository.manifest_path} records no export")
    wanted = names or sorted(models)
    missing = [name for name in wanted if name not in models]
    if missing:
        raise ExportError(f"the manifest records no export of {', '.join(missing)}")
    return [
        (name, int(v)) for name in wanted for v in sorted(models[name].get("versions", {}), key=int)
    ]


def check_reproducible(
    repository: ModelRepository, names: list[str] | None = None
) -> list[CheckResult]:
    """Re-export each recorded model version with its recorded target and compare."""
    results = []
    for name, version in recorded_versions(repository, names):
        record = manifest.load(repository.manifest_path)["models"][name]["versions"][str(version)]
        with tempfile.TemporaryDirectory(prefix="maas-check-") as scratch:
            fresh = ModelRepository(Path(scratch))
            result = export_model(get_spec(name), fresh, version, targets=[record["target"]])
            results.append(compare_export(repository, fresh, result, record, version))
    return results


def compare_export(
    committed: ModelRepository,
    fresh: ModelRepository,
    result: ExportResult,
    record: dict[str, object],
    version: int,
) -> CheckResult:
    """Apply the policy to one model version."""
    check = CheckResult(result.spec.name, version)
    for model in result.models:
        for filename in (CONFIG_FILE, LABELS_FILE):
            ours, theirs = committed.model_dir(model) / filename, fresh.model_dir(model) / filename
            if theirs.exists() and not (ours.exists() and filecmp.cmp(ours, theirs, shallow=False)):
                check.verdict = "different"
                check.notes.append(f"{model}/{filename} differs from the committed file")
    recorded_metrics = record.get("metrics", {})
    if recorded_metrics != result.built.metrics:
        check.verdict = "different"
        check.notes.append(f"metrics {result.built.metrics} != recorded {recorded_metrics}")
    if result.sha256 != record.get("sha256"):
        compare_artifacts(committed, result, version, check)
    return check


def compare_artifacts(
    committed: ModelRepository, result: ExportResult, version: int, check: CheckResult
) -> None:
    """Different bytes: run both artifacts, if the committed one is present, and compare."""
    original = committed.version_dir(result.spec.name, version) / result.target.artifact
    if not original.is_file():
        check.verdict = "different"
        check.notes.append(f"artifact hash differs and {original} is not here to compare outputs")
        return
    options = RuntimeOptions(result.target.precision)
    inputs = result.built.eval_inputs
    old = run_batched(load_runner(result.target.runtime, original, options).infer, inputs)
    new = run_batched(load_runner(result.target.runtime, result.artifact, options).infer, inputs)
    report = compare_outputs(result.spec, old, new)
    if report.failures:
        check.verdict = "different"
        check.notes.extend(report.failures)
    elif check.verdict == "identical":
        check.verdict = "equivalent"
        check.notes.append("artifact bytes differ; outputs agree within the spec's tolerances")
