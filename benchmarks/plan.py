"""Capacity on paper: replicas and the autoscaler's target from one replica's measured curve.

Input: the results.json of `maas bench` or `maas bench-suite` (each level's throughput, p99
and Triton's own queue time per request). One replica's capacity at a p99 goal is the highest
measured load at which that level and every lighter one met the goal: measured, never
interpolated or extrapolated, and a noisy level that missed stops the curve there.

Assumption: replicas scale out linearly. Each is independent (its own cores or GPU), the
gateway spreads requests evenly (least connections), and nothing they share saturates first.
What breaks it: replicas packed onto the same cores (two on these 2 cores are not twice one),
a gateway or network at its own limit, uneven batching (a replica with less load forms smaller
batches, so its curve is not the one measured at full load), and cold starts while the
autoscaler adds replicas (minutes for a large model: the target must leave room for them).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maas.base.errors import BenchmarkError
from maas.monitor.rules import QUEUE_PER_REQUEST

from .load_report import BenchRun
from .load_test import result_from_dict

QUEUE_METRIC = QUEUE_PER_REQUEST  # the autoscaler's metric, per model


class PlanError(BenchmarkError):
    """The measurements cannot answer the question asked."""


@dataclass(frozen=True)
class CurvePoint:
    """One measured level of one replica."""

    label: str
    throughput_rps: float
    p99_ms: float
    queue_ms: float  # Triton's queue time per request of the model that waited longest
    queue_model: str


@dataclass(frozen=True)
class Plan:
    """Replicas for a rate at a p99 goal, and the autoscaler's target."""

    run_title: str
    rate_rps: float
    p99_goal_ms: float
    capacity: CurvePoint
    replicas: int
    left_out: tuple[str, ...] = field(default_factory=tuple)

    @property
    def per_replica_rps(self) -> float:
        """The load each replica carries with `replicas` of them."""
        return self.rate_rps / self.replicas


def load_runs(path: Path) -> tuple[list[BenchRun], dict[str, Any]]:
    """The runs and the machine's fingerprint of a results.json."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise PlanError(
            f"no results at {path}; run `maas bench` (it writes results.json)"
        ) from None
    except ValueError as error:
        raise PlanError(f"{path} is not a results.json of maas bench: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("runs"), list):
        raise PlanError(f"{path} is not a results.json of maas bench (no 'runs')")
    runs = [
        BenchRun(
            model=raw["model"],
            protocol=raw["protocol"],
            shm=bool(raw.get("shm", False)),
            levels=[result_from_dict(level) for level in raw["levels"]],
        )
        for raw in document["runs"]
    ]
    return runs, dict(document.get("fingerprint", {}))


def choose_run(
    runs: list[BenchRun],
    model: str,
    protocol: str = "",
    shm: bool = False,
    open_loop: bool | None = None,
) -> BenchRun:
    """The one run of the model matching the filters; an error naming the choices otherwise."""
    matching = [
        run
        for run in runs
        if run.model == model
        and (not protocol or run.protocol == protocol)
        and run.shm == shm
        and (open_loop is None or run.open_loop == open_loop)
    ]
    if len(matching) == 1:
        return matching[0]
    found = sorted({run.title for run in runs if run.model == model})
    if not matching:
        choices = "; ".join(found) if found else "none of this model"
        raise PlanError(f"no measured run of {model} matches; the results have: {choices}")
    titles = "; ".join(run.title for run in matching)
    raise PlanError(f"{len(matching)} runs match ({titles}); pick one with --protocol or --loop")


def curve(run: BenchRun) -> tuple[list[CurvePoint], list[str]]:
    """The usable levels, lightest first, and those left out with the reason."""
    points: list[CurvePoint] = []
    left_out: list[str] = []
    for level in sorted(run.levels, key=lambda result: result.throughput_rps):
        label = level.level.label
        if level.failures:
            left_out.append(f"{label}: {level.failures} failed")
            continue
        if level.rate_warning():
            left_out.append(f"{label}: the load generator did not hold the offered rate")
            continue
        waits = max(level.server, key=lambda row: row.queue_ms, default=None)
        points.append(
            CurvePoint(
                label,
                level.throughput_rps,
                level.p99_ms,
                waits.queue_ms if waits else 0.0,
                waits.model if waits else "",
            )
        )
    return points, left_out


def make_plan(run: BenchRun, rate_rps: float, p99_goal_ms: float) -> Plan:
    """Replicas for `rate_rps` with each replica's p99 within the goal."""
    if rate_rps <= 0 or p99_goal_ms <= 0:
        raise PlanError("--rate and --p99-ms must be positive")
    points, left_out = curve(run)
    met: list[CurvePoint] = []
    for point in points:
        if point.p99_ms > p99_goal_ms:
            left_out.append(f"{point.label}: p99 {point.p99_ms:.1f} ms > {p99_goal_ms:g} ms")
            break
        met.append(point)
    if not met:
        best = min(points, key=lambda p: p.p99_ms, default=None)
        seen = (
            f"the lightest usable level had p99 {best.p99_ms:.1f} ms"
            if best
            else "no usable level: " + "; ".join(left_out)
        )
        raise PlanError(
            f"no measured level of {run.title} met p99 ≤ {p99_goal_ms:g} ms ({seen}); "
            "relax the goal, measure lighter loads, or make one replica faster"
        )
    capacity = met[-1]
    replicas = math.ceil(rate_rps / capacity.throughput_rps - 1e-9)
    return Plan(run.title, rate_rps, p99_goal_ms, capacity, replicas, tuple(left_out))


def render(plan: Plan, source: str, fingerprint: dict[str, Any]) -> str:
    """The plan for people: what it rests on, the answer, the target, the assumption."""
    machine = f"{fingerprint.get('cores', '?')} cores, {fingerprint.get('date', 'date unknown')}"
    capacity = plan.capacity
    lines = [
        f"{plan.run_title} ({source}; measured on {machine})",
        f"  goal: {plan.rate_rps:g} req/s with p99 ≤ {plan.p99_goal_ms:g} ms",
        f"  one replica: {capacity.throughput_rps:.1f} req/s at p99 {capacity.p99_ms:.1f} ms "
        f"({capacity.label}), the heaviest level that met the goal with every lighter one",
        f"  replicas: {plan.replicas} ({plan.per_replica_rps:.1f} req/s each); "
        f"{plan.replicas + 1} to keep the goal with one replica lost",
    ]
    if capacity.queue_model:
        lines.append(
            f"  autoscaler target: {capacity.queue_ms:.2f} ms queue time per request of "
            f"{capacity.queue_model} ({QUEUE_METRIC}, weighted by requests), its queue at that "
            "capacity; above it, one replica is past the load that met the goal"
        )
    lines += [f"  left out: {reason}" for reason in plan.left_out]
    lines.append(
        "  assumes: replicas scale out linearly (own cores or GPU each, even spreading, nothing "
        "shared saturating first)"
    )
    return "\n".join(lines)
