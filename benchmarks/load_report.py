"""Reports of load tests: Markdown for people, PNG plots, CSV and JSON for tools."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .baselines import Throughput
from .fingerprint import render as render_fingerprint
from .load_test import LevelResult
from .report import markdown_table

PHASE_LABELS = {
    "queue_ms": "queue",
    "compute_input_ms": "compute input",
    "compute_infer_ms": "compute infer",
    "compute_output_ms": "compute output",
}


@dataclass
class BenchRun:
    """One model under one way of calling it, at every level measured."""

    model: str
    protocol: str
    shm: bool
    levels: list[LevelResult]
    limit: Throughput | None = None  # the artifact in-process at the batch Triton formed
    limit_model: str = ""  # the model whose artifact the limit ran (the classifier of an ensemble)
    notes: list[str] = field(default_factory=list)

    @property
    def open_loop(self) -> bool:
        """Whether the levels offered rates rather than user counts."""
        return any(level.level.rate for level in self.levels)

    @property
    def title(self) -> str:
        """e.g. 'resnet50 over grpc + system shm', 'minilm_text over grpc, open loop'."""
        shm = " + system shm" if self.shm else ""
        return f"{self.model} over {self.protocol}{shm}{', open loop' if self.open_loop else ''}"

    @property
    def slug(self) -> str:
        """A file-name-safe name."""
        shm = "-shm" if self.shm else ""
        return f"{self.model}-{self.protocol}{shm}{'-rate' if self.open_loop else ''}"

    def saturation(self) -> LevelResult:
        """The level with the highest throughput."""
        return max(self.levels, key=lambda level: level.throughput_rps)

    def counts_agree(self) -> bool:
        """Whether Triton counted every successful call Locust counted, at every level."""
        return all(
            (served := level.served(self.model)) is not None and served.requests == level.requests
            for level in self.levels
        )

    def formed_batch(self) -> float:
        """The average batch Triton formed for the limit's model at saturation."""
        served = self.saturation().served(self.limit_model or self.model)
        return served.avg_batch if served is not None else 1.0


LEVEL_COLUMNS = (
    "load", "req/s", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "ok", "failed", "Triton count",
    "avg batch", "client CPU ms/req", "server CPU ms/req", "note",
)  # fmt: skip
BREAKDOWN_COLUMNS = (
    "load", "model", "requests", "avg batch", "queue ms", "input ms", "infer ms", "output ms",
    "server ms", "client mean ms",
)  # fmt: skip


def levels_table(run: BenchRun) -> str:
    """Client-side numbers per level, with Triton's count beside Locust's."""
    rows = []
    for level in run.levels:
        served = level.served(run.model)
        limit_row = level.served(run.limit_model or run.model)
        rows.append(
            (
                level.level.label,
                f"{level.throughput_rps:.1f}",
                *(f"{value:.2f}" for value in (level.p50_ms, level.p90_ms, level.p95_ms)),
                f"{level.p99_ms:.2f}",
                level.requests,
                level.failures,
                served.requests if served else "–",
                f"{limit_row.avg_batch if limit_row else 0:.2f}",
                f"{level.client_cpu_ms:.2f}",
                f"{level.server_cpu_ms or float('nan'):.2f}",
                level.rate_warning(),
            )
        )
    return markdown_table(LEVEL_COLUMNS, rows)


def breakdown_table(run: BenchRun) -> str:
    """Triton's per-model time per request at each level, next to the client's mean."""
    rows = [
        (
            level.level.label,
            row.model,
            row.requests,
            f"{row.avg_batch:.2f}",
            *(
                f"{value:.3f}"
                for value in (
                    row.queue_ms,
                    row.compute_input_ms,
                    row.compute_infer_ms,
                    row.compute_output_ms,
                    row.request_ms,
                )
            ),
            f"{level.mean_ms:.2f}" if row.model == run.model else "",
        )
        for level in run.levels
        for row in level.server
    ]
    return markdown_table(BREAKDOWN_COLUMNS, rows)


def errors_section(run: BenchRun) -> str:
    """Every distinct error with its count, or a line saying there were none."""
    errors: dict[str, int] = {}
    for level in run.levels:
        for message, count in level.errors.items():
            errors[message] = errors.get(message, 0) + count
    if not errors:
        return "No request failed."
    return "\n".join(f"- {count}× {message}" for message, count in errors.items())


def limit_line(run: BenchRun) -> str:
    """Served saturation against the in-process limit."""
    if run.limit is None:
        return ""
    best = run.saturation()
    ratio = best.throughput_rps / run.limit.samples_per_s if run.limit.samples_per_s else 0.0
    return (
        f"In-process limit: `{run.limit_model}`'s served artifact at batch {run.limit.batch} "
        f"(Triton's average formed batch at saturation, {run.formed_batch():.2f}): "
        f"**{run.limit.samples_per_s:.1f}/s**. Served at saturation ({best.level.label}): "
        f"**{best.throughput_rps:.1f}/s = {ratio:.2f}× the limit**."
    )


def render_run(run: BenchRun, plots: Sequence[str] = ()) -> str:
    """The Markdown section of one run."""
    agree = "yes" if run.counts_agree() else "**no**"
    parts = [
        f"### {run.title}",
        "",
        levels_table(run),
        "",
        f"Locust and Triton counted the same successful requests at every level: {agree}.",
        "",
        limit_line(run),
        "",
        "Server-side breakdown (Triton's statistics over the same windows, per request):",
        "",
        breakdown_table(run),
        "",
        errors_section(run),
        *[f"\n{note}" for note in run.notes],
        "",
        *[f"![{Path(plot).stem}]({plot})" for plot in plots],
    ]
    return "\n".join(part for part in parts if part is not None)


def plot_run(run: BenchRun, folder: Path) -> list[str]:
    """throughput, latency and breakdown plots of a run; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    labels = [level.level.label for level in run.levels]
    names = []

    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(labels, [level.throughput_rps for level in run.levels], marker="o", label="served")
    if run.limit is not None:
        label = f"{run.limit_model} in-process limit (batch {run.limit.batch})"
        axis.axhline(run.limit.samples_per_s, linestyle="--", color="gray", label=label)
    axis.set(title=f"{run.title}: throughput", xlabel="load", ylabel="requests/s")
    axis.legend()
    names.append(_save(figure, folder / f"{run.slug}-throughput.png"))

    figure, axis = plt.subplots(figsize=(6, 4))
    for attribute, label in (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")):
        axis.plot(
            labels, [getattr(level, attribute) for level in run.levels], marker="o", label=label
        )
    axis.set(title=f"{run.title}: latency", xlabel="load", ylabel="ms")
    axis.legend()
    names.append(_save(figure, folder / f"{run.slug}-latency.png"))

    figure, axis = plt.subplots(figsize=(6, 4))
    bottoms = [0.0] * len(run.levels)
    target = run.limit_model or run.model
    for attribute, label in PHASE_LABELS.items():
        rows = [level.served(target) for level in run.levels]
        values = [getattr(row, attribute) if row else 0.0 for row in rows]
        axis.bar(labels, values, bottom=bottoms, label=label)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    axis.plot(labels, [level.mean_ms for level in run.levels], "k.-", label="client mean")
    axis.set(title=f"{target}: time per request in Triton", xlabel="load", ylabel="ms")
    axis.legend()
    names.append(_save(figure, folder / f"{run.slug}-breakdown.png"))
    return names


def _save(figure: object, path: Path) -> str:
    import matplotlib.pyplot as plt

    figure.tight_layout()  # type: ignore[attr-defined]
    figure.savefig(path, dpi=90)  # type: ignore[attr-defined]
    plt.close(figure)  # type: ignore[arg-type]
    return path.name


def run_rows(run: BenchRun) -> list[dict[str, object]]:
    """One flat row per level, for CSV."""
    rows = []
    for level in run.levels:
        row = level.as_row()
        served = level.served(run.limit_model or run.model)
        row.pop("server")
        row.pop("errors")
        row.update(model=run.model, protocol=run.protocol, shm=run.shm)
        row["avg_batch"] = served.avg_batch if served else ""
        row["triton_requests"] = s.requests if (s := level.served(run.model)) else ""
        rows.append(row)
    return rows


def write_run_files(runs: Sequence[BenchRun], folder: Path, fingerprint: dict[str, object]) -> None:
    """results.csv (one row per level) and results.json (everything) in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [row for run in runs for row in run_rows(run)]
    with (folder / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    document = {"fingerprint": fingerprint, "runs": [asdict(run) for run in runs]}
    (folder / "results.json").write_text(json.dumps(document, indent=2, default=str) + "\n")


def write_bench_report(
    runs: Sequence[BenchRun], folder: Path, fingerprint: dict[str, object], header: str
) -> Path:
    """report.md with plots, results.csv and results.json for standalone `maas bench` runs."""
    sections = [header, ""]
    for run in runs:
        sections += [render_run(run, plot_run(run, folder)), ""]
    sections.append(render_fingerprint(fingerprint))
    write_run_files(runs, folder, fingerprint)
    path = folder / "report.md"
    path.write_text("\n".join(sections).rstrip("\n") + "\n")
    return path
