"""What `maas export` prints: an export's verification and target choice, a check's verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # both import the exporter, which imports torch
    from .exporter import ExportResult
    from .reproduce import CheckResult


def describe_export(result: ExportResult) -> str:
    """Where the artifact went and how well it matched its source; one line per target tried."""
    report = result.report
    measures = []
    if report.top1_agreement is not None:
        measures.append(f"top-1 agreement {report.top1_agreement:.4f}")
    if report.min_cosine is not None:
        measures.append(f"min cosine {report.min_cosine:.7f}")
    measures += [f"{key} {value:.4f}" for key, value in result.built.metrics.items()]
    measures += [
        f"{o.name} max abs {o.max_abs_error:.2e} / rel {o.max_rel_error:.2e}"
        for o in report.outputs
    ]
    where = f"{result.spec.name}: ONNX verified on {report.samples} inputs"
    lines = [f"{where} ({'; '.join(measures)})"]
    for candidate in result.candidates:
        speed = ", ".join(f"b{t.batch} {t.samples_per_s:.1f}/s" for t in candidate.throughput)
        verdict = speed if candidate.status == "accepted" else "; ".join(candidate.reasons)
        chosen = "→ served" if candidate.target == result.target else "        "
        lines.append(f"  {chosen} {candidate.target.name:17} {candidate.status:8} {verdict}")
    lines.append(f"  artifact {result.artifact}")
    return "\n".join(lines)


def describe_checks(results: Sequence[CheckResult]) -> list[str]:
    """One verdict per re-exported model version, with its notes."""
    lines = []
    for result in results:
        notes = f": {'; '.join(result.notes)}" if result.notes else ""
        lines.append(f"{result.model} v{result.version}: {result.verdict}{notes}")
    return lines
