"""The reference suite's judgement and report: goals met or missed, the ladder, tables, plots.

Built from a SuiteResult that maas.benchmarks.suite measured; nothing here measures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .fingerprint import render as render_fingerprint
from .load_report import BenchRun, plot_run, render_run, write_run_files
from .peers_bench import PeersResult
from .peers_report import goals as peers_goals
from .peers_report import goals_table as goals_table_of_peers
from .report import markdown_table
from .suite import (
    GOAL_LIMIT_RATIO,
    GOAL_NAIVE_RATIO,
    GOAL_OVERHEAD_MS,
    Goal,
    SuiteOptions,
    SuiteResult,
)


def limit_goal(name: str, runs: Sequence[BenchRun]) -> Goal:
    """Served saturation ≥ 0.9× the limit, for the best way of calling the model."""
    ratios = {r.title: limit_ratio(r) for r in runs if r.limit is not None}
    best = max(ratios, key=ratios.__getitem__)
    measured = "; ".join(f"{title}: {ratio:.2f}×" for title, ratio in ratios.items())
    met = ratios[best] >= GOAL_LIMIT_RATIO
    why = "" if met else cpu_explanation(next(r for r in runs if r.title == best))
    return Goal(name, f"≥ {GOAL_LIMIT_RATIO}× the in-process limit", measured, met, why)


def limit_ratio(run: BenchRun) -> float:
    """Saturation throughput over the limit."""
    assert run.limit is not None
    return run.saturation().throughput_rps / run.limit.samples_per_s


def cpu_explanation(run: BenchRun) -> str:
    """Where the CPU went at saturation, against what the limit needs per sample."""
    best = run.saturation()
    assert run.limit is not None
    cores = float(os.cpu_count() or 1)
    limit_ms = cores * 1000.0 / run.limit.samples_per_s
    return (
        f"at saturation each request cost {best.client_cpu_ms:.2f} ms of load-generator CPU and "
        f"{best.server_cpu_ms:.2f} ms of server CPU, against {limit_ms:.2f} core-ms per sample "
        f"in-process; on {cores:.0f} shared cores that caps throughput at "
        f"{cores * 1000.0 / (best.client_cpu_ms + best.server_cpu_ms):.0f} req/s. The server's "
        f"{best.server_cpu_ms - limit_ms:.2f} ms above the in-process cost is the serving path "
        "(the request's way through Triton, and the Python-backend hop of the embedded server: "
        "inputs copied into the stub's shared memory, the stub round trip, outputs copied back)"
    )


def naive_goal(result: SuiteResult) -> Goal:
    """Served image ensemble against the naive service, both taking the same JPEG bytes."""
    naive = result.run("resnet50_image", "naive").saturation().throughput_rps
    served = result.run("resnet50_image", "grpc").saturation().throughput_rps
    tensors = result.run("resnet50", "grpc", True).saturation().throughput_rps
    ratio = served / naive
    measured = (
        f"JPEG bytes to resnet50_image over gRPC {served:.1f}/s vs naive {naive:.1f}/s = "
        f"{ratio:.1f}× (preprocessed tensors over gRPC + shm: {tensors / naive:.1f}×)"
    )
    why = ""
    if ratio < GOAL_NAIVE_RATIO:
        image = result.run("resnet50_image", "grpc")
        rows = {row.model: row for row in image.saturation().server}
        preprocess = rows.get("resnet50_preprocess")
        why = cpu_explanation_image(image, preprocess.compute_infer_ms if preprocess else 0.0)
    return Goal(
        "ResNet-50 vs naive FastAPI + PyTorch",
        f"≥ {GOAL_NAIVE_RATIO:g}×",
        measured,
        ratio >= GOAL_NAIVE_RATIO,
        why,
    )


def cpu_explanation_image(run: BenchRun, preprocess_ms: float) -> str:
    """Why the image path is bounded: the Python decode and resize on the same cores."""
    best = run.saturation()
    return (
        f"each request costs {best.server_cpu_ms:.2f} ms of server CPU, of which the Python "
        f"JPEG decode + resize + normalise step takes {preprocess_ms:.2f} ms per batch row in "
        f"Triton, plus {best.client_cpu_ms:.2f} ms in the load generator, on "
        f"{os.cpu_count()} shared cores"
    )


def overhead_goals(result: SuiteResult) -> list[Goal]:
    """Concurrency-1 p50 overhead for digits_cnn and the ResNet-50 ensemble."""
    goals = []
    for model, limit in GOAL_OVERHEAD_MS.items():
        rows = [o for o in result.overheads if o.model == model]
        best = min(rows, key=lambda o: o.overhead_ms)
        measured = "; ".join(
            f"{o.protocol}: {o.served_p50_ms:.2f} − {o.in_process_p50_ms:.2f} = "
            f"{o.overhead_ms:.2f} ms"
            for o in rows
        )
        goals.append(
            Goal(
                f"{model} concurrency-1 p50 overhead",
                f"≤ {limit:g} ms",
                measured,
                best.overhead_ms <= limit,
            )
        )
    return goals


def goals(result: SuiteResult) -> list[Goal]:
    """Every goal of the issue."""
    resnet = [r for r in result.runs if r.model == "resnet50"]
    minilm = [r for r in result.runs if r.model in ("minilm", "minilm_text")]
    return [
        limit_goal("ResNet-50 served throughput at saturation", resnet),
        naive_goal(result),
        limit_goal("MiniLM (mixed-length real sentences) served throughput", minilm),
        *overhead_goals(result),
    ]


# --- report ----------------------------------------------------------------------------------


def goals_table(items: Sequence[Goal]) -> str:
    """Markdown: goal, target, measured, met."""
    table = markdown_table(
        ("goal", "target", "measured", "met"),
        ((g.name, g.target, g.measured, "yes" if g.met else "**no**") for g in items),
    )
    misses = [f"- **{goal.name}** missed: {goal.why}." for goal in items if goal.why]
    return "\n".join([table, *(["", *misses] if misses else [])])


@dataclass(frozen=True)
class LadderStep:
    """One step of the overhead ladder."""

    label: str
    p50_ms: float  # at one user
    one_user_rps: float
    saturation_rps: float
    saturation_at: str
    client_cpu_ms: float | None  # per request at saturation; None in-process


LADDER = (("http", False), ("grpc", False), ("http", True), ("grpc", True))


def ladder_steps(result: SuiteResult) -> list[LadderStep]:
    """resnet50 in-process, then over each transport."""
    limits = [r.limit.samples_per_s for r in result.runs if r.model == "resnet50" and r.limit]
    p50 = result.ladder_in_process_p50_ms
    steps = [
        LadderStep(
            "in-process (served artifact; batch 1 / formed batch)",
            p50,
            1000.0 / p50,
            float(np.median(limits)),
            "median of the runs' limits",
            None,
        )
    ]
    for protocol, shm in LADDER:
        run = result.run("resnet50", protocol, shm)
        one = next(level for level in run.levels if level.level.users == 1)
        best = run.saturation()
        steps.append(
            LadderStep(
                f"Triton over {protocol}{' + system shm' if shm else ''}",
                one.p50_ms,
                one.throughput_rps,
                best.throughput_rps,
                best.level.label,
                best.client_cpu_ms,
            )
        )
    return steps


def ladder_table(result: SuiteResult) -> str:
    """resnet50 at concurrency 1 and at saturation, one step of the transport at a time."""
    header = (
        "step",
        "p50 ms at 1 user",
        "req/s at 1 user",
        "saturation req/s",
        "client CPU ms/req",
    )
    rows = (
        (
            step.label,
            f"{step.p50_ms:.2f}",
            f"{step.one_user_rps:.1f}",
            f"{step.saturation_rps:.1f} ({step.saturation_at})",
            "–" if step.client_cpu_ms is None else f"{step.client_cpu_ms:.2f}",
        )
        for step in ladder_steps(result)
    )
    return markdown_table(header, rows)


def overhead_table(result: SuiteResult) -> str:
    """Concurrency-1 p50, served against in-process."""
    header = (
        "model",
        "protocol",
        "served p50 ms",
        "in-process p50 ms",
        "overhead ms",
        "in-process path",
    )
    rows = (
        (o.model, o.protocol, f"{o.served_p50_ms:.2f}", f"{o.in_process_p50_ms:.2f}",
         f"{o.overhead_ms:.2f}", o.in_process)
        for o in result.overheads
    )  # fmt: skip
    return markdown_table(header, rows)


def plot_ladder(result: SuiteResult, folder: Path) -> str:
    """Bar chart of the ladder: p50 at one user and saturation throughput per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = ladder_steps(result)
    labels = [step.label.removeprefix("Triton over ").split(" (")[0] for step in steps]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(labels, [step.p50_ms for step in steps], color="tab:blue")
    left.set(title="resnet50: p50 latency at 1 user", ylabel="ms")
    right.bar(labels, [step.saturation_rps for step in steps], color="tab:green")
    right.set(title="resnet50: throughput at saturation", ylabel="requests/s")
    for axis in (left, right):
        axis.tick_params(axis="x", rotation=30)
    figure.tight_layout()
    path = folder / "ladder.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path.name


def peers_section(peers: PeersResult | None) -> list[str]:
    """The peers benchmark's goals, when it ran with the suite, and where its report is."""
    if peers is None:
        return []
    return [
        "## Against the peers (BentoML, Ray Serve, TorchServe)",
        "",
        goals_table_of_peers(peers_goals(peers)),
        "",
        "Full report: [peers/report.md](peers/report.md).",
        "",
    ]


def write_suite_report(
    result: SuiteResult,
    print_: dict[str, object],
    options: SuiteOptions,
    command: str,
    peers: PeersResult | None = None,
) -> Path:
    """report.md with the goals first, then every run; plus plots, CSV and JSON."""
    folder = options.out
    folder.mkdir(parents=True, exist_ok=True)
    sections = [
        "# Reference benchmark",
        "",
        f"Command: `{command}`. One run, one machine (fingerprint at the end); Locust users in "
        f"a separate process on the same 2 cores; {options.warmup_s:g} s warm-up and "
        f"{options.duration_s:g} s measured per level; latency percentiles from every call.",
        "",
        "## Goals",
        "",
        goals_table(goals(result)),
        "",
        *peers_section(peers),
        "## Overhead ladder (resnet50, preprocessed tensors)",
        "",
        ladder_table(result),
        "",
        f"![ladder]({plot_ladder(result, folder)})",
        "",
        "## Concurrency-1 latency overhead",
        "",
        overhead_table(result),
        "",
        "## Runs",
        "",
    ]
    for run in result.runs:
        sections += [render_run(run, plot_run(run, folder)), ""]
    sections.append(render_fingerprint(print_))
    write_run_files(result.runs, folder, print_)
    path = folder / "report.md"
    path.write_text("\n".join(sections).rstrip("\n") + "\n")
    return path
