"""In-process throughput of every export target, for each model, measured in one run."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from maas.export.exporter import build_candidates
from maas.export.registry import get_spec
from maas.export.selection import Candidate
from maas.export.targets import TARGETS

from .report import write_pair

BASELINE = "onnxruntime-fp32"


@dataclass(frozen=True)
class TargetRow:
    """One model × target line of the report."""

    model: str
    target: str
    status: str
    batch1: float  # samples/s at batch 1
    best: float  # samples/s at the best measured batch
    best_batch: int
    reasons: str

    def speedup(self, baseline: TargetRow | None) -> str:
        """Best throughput relative to the baseline target of the same model."""
        if baseline is None or not baseline.best or not self.best:
            return "–"
        return f"{self.best / baseline.best:.1f}×"


def row(model: str, candidate: Candidate) -> TargetRow:
    """Summarise one candidate."""
    best = max(candidate.throughput, key=lambda t: t.samples_per_s, default=None)
    batch1 = next((t.samples_per_s for t in candidate.throughput if t.batch == 1), 0.0)
    return TargetRow(
        model=model,
        target=candidate.target.name,
        status=candidate.status,
        batch1=batch1,
        best=best.samples_per_s if best else 0.0,
        best_batch=best.batch if best else 0,
        reasons="; ".join(candidate.reasons),
    )


def bench_targets(models: Sequence[str], seconds: float) -> list[TargetRow]:
    """Build, gate and time every target of every model; seconds per batch size."""
    rows = []
    for name in models:
        spec = get_spec(name)
        built = spec.build()
        with tempfile.TemporaryDirectory(prefix=f"maas-bench-{name}-") as scratch:
            _, candidates = build_candidates(
                spec, built, list(TARGETS.values()), Path(scratch), seconds
            )
        rows += [row(name, candidate) for candidate in candidates]
    return rows


def render_table(rows: Sequence[TargetRow]) -> str:
    """Markdown: throughput at batch 1 and at the best batch, and the speed-up over the baseline."""
    lines = [
        f"| model | target | status | batch 1 /s | best /s (batch) | best vs {BASELINE} |",
        "|---|---|---|---|---|---|",
    ]
    baselines = {r.model: r for r in rows if r.target == BASELINE}
    for item in rows:
        if item.status != "accepted":
            lines.append(
                f"| {item.model} | {item.target} | {item.status}: {item.reasons} | – | – | – |"
            )
            continue
        lines.append(
            f"| {item.model} | {item.target} | accepted | {item.batch1:.1f} | "
            f"{item.best:.1f} (b{item.best_batch}) | {item.speedup(baselines.get(item.model))} |"
        )
    return "\n".join(lines)


def write_report(rows: Sequence[TargetRow], folder: Path, header: str) -> Path:
    """targets.md and targets.json in folder; returns the Markdown path."""
    return write_pair(
        folder, "targets", [vars(r) for r in rows], f"{header}\n\n{render_table(rows)}"
    )
