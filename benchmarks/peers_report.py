"""The peers report: goals, tables and plots with every system side by side, CSV and JSON."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .fingerprint import render as render_fingerprint
from .load_report import PHASE_LABELS, _save
from .load_test import Level, LevelResult
from .peers.launch import LAUNCHERS
from .peers.tasks import TASKS
from .peers_bench import PeersOptions, PeersResult, SystemRun, save_result
from .report import markdown_table

GOAL_RATIO = 1.5  # maas's saturation throughput over the best peer's
COMPARED = ("bentoml", "ray", "torchserve")  # the peers of the goals; naive is the floor


@dataclass(frozen=True)
class PeerGoal:
    """One goal on one task, as measured."""

    task: str
    name: str
    target: str
    measured: str
    met: bool


def ms(value: float) -> str:
    """A latency cell."""
    return "–" if math.isnan(value) else f"{value:.1f}"


def peers_of(runs: Sequence[SystemRun]) -> list[SystemRun]:
    """The compared peers among runs (their chosen settings)."""
    return [run for run in runs if run.system in COMPARED and run.chosen]


def maas_of(runs: Sequence[SystemRun]) -> SystemRun | None:
    """The run of maas among runs."""
    return next((run for run in runs if run.system == "maas" and run.chosen), None)


def throughput_goal(task: str, runs: Sequence[SystemRun]) -> PeerGoal:
    """Goal: maas ≥ 1.5 × the best peer's saturation throughput."""
    ours, peers = maas_of(runs), peers_of(runs)
    target = f"≥ {GOAL_RATIO:g}× the best peer"
    if ours is None or not peers:
        return PeerGoal(task, "saturation throughput", target, "not measured", False)
    best = max(peers, key=lambda run: run.saturation().throughput_rps)
    mine, theirs = ours.saturation().throughput_rps, best.saturation().throughput_rps
    ratio = mine / theirs if theirs else math.inf
    measured = f"maas {mine:.1f}/s vs {best.title} {theirs:.1f}/s = {ratio:.2f}×"
    return PeerGoal(task, "saturation throughput", target, measured, ratio >= GOAL_RATIO)


def p99_goal(task: str, runs: Sequence[SystemRun], every_setting: bool = False) -> PeerGoal:
    """Goal: a p99 of maas lower than every peer's at every load level.

    Judged against each peer's compared setting, or (every_setting) against every setting
    tried, so a setting that lost on throughput but answers faster at some level still counts.
    """
    ours = maas_of(runs)
    peers = [run for run in runs if run.system in COMPARED and (run.chosen or every_setting)]
    name = "p99 at every level" + (", every peer setting" if every_setting else "")
    target = "lower p99 than every peer at every level"
    if ours is None or not peers:
        return PeerGoal(task, name, target, "not measured", False)
    beaten = []
    for mine in ours.levels:
        for peer in peers:
            theirs = peer.at(mine.level)
            if theirs is not None and not theirs.p99_ms > mine.p99_ms:
                peer_p99, maas_p99 = ms(theirs.p99_ms), ms(mine.p99_ms)
                who = f"{peer.title} ({peer.setting})" if every_setting else peer.title
                beaten.append(f"{mine.level.label}: {who} {peer_p99} ≤ maas {maas_p99} ms")
    measured = "lower at every level" if not beaten else "; ".join(beaten)
    return PeerGoal(task, name, target, measured, not beaten)


def goals(result: PeersResult) -> list[PeerGoal]:
    """Both goals on every task measured."""
    found = []
    for task in tasks_of(result):
        runs, tried = result.of_task(task), result.of_task(task, chosen_only=False)
        found += [throughput_goal(task, runs), p99_goal(task, runs), p99_goal(task, tried, True)]
    return found


def tasks_of(result: PeersResult) -> list[str]:
    """The tasks measured, in the order they ran."""
    return list(dict.fromkeys(run.task for run in result.runs))


def goals_table(items: Sequence[PeerGoal]) -> str:
    """The goals as a table."""
    rows = [
        (item.task, item.name, item.target, item.measured, "yes" if item.met else "**no**")
        for item in items
    ]
    return markdown_table(("task", "goal", "target", "measured", "met"), rows)


def saturation_table(runs: Sequence[SystemRun]) -> str:
    """Each system's best closed-loop level: throughput, latency, CPU and memory."""
    rows = []
    for run in runs:
        top = run.saturation()
        cores = top.server_cpu_ms * top.throughput_rps / 1000.0
        rows.append(
            (
                run.title,
                run.setting,
                f"{top.throughput_rps:.1f}",
                top.level.label,
                ms(top.p50_ms),
                ms(top.p99_ms),
                f"{top.server_cpu_ms:.1f}",
                f"{cores:.2f}",
                f"{top.client_cpu_ms:.1f}",
                f"{run.peak_rss_mib:.0f}",
                sum(level.failures for level in run.levels),
            )
        )
    header = (
        "system",
        "setting",
        "saturation req/s",
        "at",
        "p50 ms",
        "p99 ms",
        "server CPU ms/req",
        "server cores busy",
        "client CPU ms/req",
        "peak RSS MiB",
        "failed (all levels)",
    )
    return markdown_table(header, rows)


def latency_table(runs: Sequence[SystemRun], levels: Sequence[Level]) -> str:
    """p50 / p95 / p99 of each system at each level; the lowest p99 of a level in bold."""
    header = ["system", *(f"{level.label}: p50 / p95 / p99 ms (req/s)" for level in levels)]
    best = {}
    for level in levels:
        values = [r.p99_ms for run in runs if (r := run.at(level)) and not math.isnan(r.p99_ms)]
        best[level] = min(values, default=math.nan)
    rows = []
    for run in runs:
        cells = [run.title]
        for level in levels:
            result = run.at(level)
            cells.append(latency_cell(result, best[level]) if result else "–")
        rows.append(cells)
    return markdown_table(header, rows)


def latency_cell(result: LevelResult, best_p99: float) -> str:
    """'p50 / p95 / p99 (req/s)', p99 bold where it is the level's lowest, failures named."""
    p99 = ms(result.p99_ms)
    p99 = f"**{p99}**" if result.p99_ms == best_p99 else p99
    cell = f"{ms(result.p50_ms)} / {ms(result.p95_ms)} / {p99} ({result.throughput_rps:.1f})"
    if result.failures:
        cell += f", {result.failures} failed"
    if result.rate_warning():
        cell += ", rate not held"
    return cell


def settings_table(runs: Sequence[SystemRun]) -> str:
    """Every setting tried, maas's too, with its saturation: the chosen one is compared."""
    rows = [
        (
            run.title,
            run.setting,
            f"{run.saturation().throughput_rps:.1f}",
            ms(run.saturation().p99_ms),
            "compared" if run.chosen else "",
        )
        for run in runs
        if run.system in (*COMPARED, "maas")
    ]
    return markdown_table(("system", "setting", "saturation req/s", "p99 ms there", ""), rows)


def maas_breakdown(runs: Sequence[SystemRun]) -> str:
    """Where a maas request's time goes inside Triton at each closed-loop level."""
    ours = maas_of(runs)
    if ours is None:
        return ""
    rows = []
    for level in ours.closed:
        for row in level.server:
            phases = [f"{getattr(row, name):.2f}" for name in PHASE_LABELS]
            rows.append(
                (level.level.label, row.model, f"{row.avg_batch:.2f}", *phases, ms(level.mean_ms))
            )
    header = ("load", "model", "avg batch", *PHASE_LABELS.values(), "client mean ms")
    return markdown_table(header, rows)


def plot_task(task: str, runs: Sequence[SystemRun], folder: Path) -> list[str]:
    """Throughput and p99 against load, every system on one chart; open loop on its own."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        users = [level.level.users for level in run.closed]
        left.plot(
            users, [level.throughput_rps for level in run.closed], marker="o", label=run.title
        )
        right.plot(users, [level.p99_ms for level in run.closed], marker="o", label=run.title)
    left.set(title=f"{task}: throughput (closed loop)", xlabel="users", ylabel="requests/s")
    right.set(title=f"{task}: p99 (closed loop)", xlabel="users", ylabel="ms", yscale="log")
    for axis in (left, right):
        axis.set_xscale("log", base=2)
    left.legend(fontsize=7)
    names.append(_save(figure, folder / f"{task}-closed.png"))
    if any(run.open_loop for run in runs):
        figure, axis = plt.subplots(figsize=(6, 4))
        for run in runs:
            rates = [level.level.rate for level in run.open_loop]
            axis.plot(rates, [level.p99_ms for level in run.open_loop], marker="o", label=run.title)
        axis.set(title=f"{task}: p99 at offered rates (open loop)", xlabel="offered requests/s")
        axis.set(ylabel="ms", yscale="log")
        axis.legend(fontsize=7)
        names.append(_save(figure, folder / f"{task}-open.png"))
    return names


def task_section(task: str, result: PeersResult, folder: Path) -> str:
    """One task: what it is, the tables, the plots."""
    runs = result.of_task(task)
    closed = list(dict.fromkeys(level.level for run in runs for level in run.closed))
    opened = list(dict.fromkeys(level.level for run in runs for level in run.open_loop))
    spec = TASKS[task]
    lines = [
        f"## {task}",
        "",
        f"maas serves it as `{spec.maas_model}`; every system runs the `{spec.artifact}` "
        f"artifact of the repository, batches of up to {spec.max_batch}.",
        "",
        "### Saturation",
        "",
        saturation_table(runs),
        "",
        "### Latency, closed loop",
        "",
        latency_table(runs, closed),
        "",
    ]
    if opened:
        lines += ["### Latency at fixed offered rates (open loop, Poisson)", ""]
        lines += [latency_table(runs, opened), ""]
    lines += ["### Every setting tried", "", settings_table(result.of_task(task, False)), ""]
    lines += ["### Inside maas (Triton's statistics)", "", maas_breakdown(runs), ""]
    lines += [f"![{name}]({name})" for name in plot_task(task, runs, folder)]
    return "\n".join(lines)


def header(result: PeersResult, options: PeersOptions) -> str:
    """What ran, with which versions and settings, and what did not."""
    lines = [
        "# maas against its peers: the same artifacts, side by side",
        "",
        f"Closed loop at {', '.join(str(u) for u in options.users)} users, then open loop "
        f"(Poisson arrivals, a pool of {options.rate_users} users) at fixed rates; "
        f"{options.warmup_s:g} s warm-up and {options.duration_s:g} s measured per level; one "
        "system at a time on the machine; the same Locust users and inputs for all. maas is "
        "called through its gateway (`maas serve`) over gRPC and over HTTP, each peer through "
        "its own HTTP API (see `benchmarks/peers/wire.py`); of each system's settings the one "
        "with the highest saturation throughput is compared. Server CPU and peak RSS are the "
        "whole process tree of each system (Triton + Python stubs + gateway for maas).",
        "",
        "## Goals",
        "",
        goals_table(goals(result)),
        "",
        "## Peers",
        "",
    ]
    for name, launcher in LAUNCHERS.items():
        if name in result.unavailable:
            lines.append(f"- {launcher.title}: not run: {result.unavailable[name]}")
        elif name in result.versions:
            tried = "; ".join(result.settings.get(name, []))
            lines.append(f"- {launcher.title}: {result.versions[name]}; settings tried: {tried}")
    lines += [f"- failed: {failure}" for failure in result.failed]
    return "\n".join(lines)


def csv_rows(result: PeersResult) -> list[dict[str, object]]:
    """One row per system, setting and level."""
    rows = []
    for run in result.runs:
        for level in run.levels:
            row = level.as_row()
            row.pop("server", None)
            row.pop("errors", None)
            rows.append(
                {
                    "task": run.task,
                    "system": run.system,
                    "setting": run.setting,
                    "compared": run.chosen,
                    **row,
                }
            )
    return rows


def write_peers_report(
    result: PeersResult, options: PeersOptions, folder: Path, fingerprint: dict[str, object]
) -> Path:
    """report.md with plots, results.csv and results.json in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    sections = [header(result, options), ""]
    sections += [task_section(task, result, folder) + "\n" for task in tasks_of(result)]
    sections.append(render_fingerprint(fingerprint))
    save_result(result, folder / "results.json")
    rows = csv_rows(result)
    if rows:
        with (folder / "results.csv").open("w", newline="") as sink:
            writer = csv.DictWriter(sink, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    path = folder / "report.md"
    path.write_text("\n".join(sections).rstrip("\n") + "\n")
    return path
