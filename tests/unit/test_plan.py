"""`maas plan`: one replica's measured curve → replicas and the autoscaler's target."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from maas.benchmarks.load_report import BenchRun
from maas.benchmarks.load_test import Level, LevelResult
from maas.benchmarks.plan import PlanError, choose_run, load_runs, make_plan, render
from maas.benchmarks.server_stats import ModelBreakdown

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "benchmarks" / "results" / "reference" / "results.json"


def level(users: int, rps: float, p99: float, queue: float = 1.0, failures: int = 0,
          rate: float = 0.0, delayed: int = 0) -> LevelResult:  # fmt: skip
    server = [ModelBreakdown("m", 100, 0, 50, 2.0, 5.0, queue, 0.1, 3.0, 0.1),
              ModelBreakdown("pre", 100, 0, 100, 1.0, 1.0, queue / 10, 0.1, 0.5, 0.1)]  # fmt: skip
    return LevelResult(
        Level(users, rate), 8.0, int(rps * 8), failures, rps, p99 / 3, p99 / 3, p99 / 2,
        p99 / 1.5, p99, int(rps * 8), failures, delayed=delayed, send_window_s=8.0, server=server,
    )  # fmt: skip


def run(*levels: LevelResult, protocol: str = "grpc") -> BenchRun:
    return BenchRun("m", protocol, False, list(levels))


def test_capacity_is_the_heaviest_level_that_met_the_goal_with_every_lighter_one() -> None:
    curve = run(level(1, 50, 20, 0.2), level(4, 120, 45, 9.0), level(8, 150, 80, 21.0),
                level(16, 170, 130), level(32, 180, 95))  # fmt: skip
    plan = make_plan(curve, rate_rps=400, p99_goal_ms=100)
    assert (plan.capacity.throughput_rps, plan.replicas) == (150, 3)
    assert plan.per_replica_rps == pytest.approx(133.33, abs=0.01)
    assert (plan.capacity.queue_model, plan.capacity.queue_ms) == ("m", 21.0)
    # 32 users met the goal again (noise): the curve stops at the first miss all the same
    assert plan.left_out == ("16 users: p99 130.0 ms > 100 ms",)
    assert make_plan(curve, rate_rps=450, p99_goal_ms=100).replicas == 3  # exactly 3 × 150
    assert make_plan(curve, rate_rps=451, p99_goal_ms=100).replicas == 4


def test_failed_and_unheld_levels_do_not_count() -> None:
    curve = run(level(1, 50, 20), level(4, 120, 45, failures=3),
                level(0, 140, 60, rate=150, delayed=400))  # fmt: skip
    plan = make_plan(curve, rate_rps=100, p99_goal_ms=100)
    assert plan.capacity.throughput_rps == 50 and plan.replicas == 2
    assert plan.left_out == (
        "4 users: 3 failed", "150/s: the load generator did not hold the offered rate",
    )  # fmt: skip


def test_questions_the_measurements_cannot_answer_are_refused_with_what_was_seen() -> None:
    with pytest.raises(PlanError, match=r"met p99 ≤ 10 ms \(the lightest usable level had p99 20"):
        make_plan(run(level(1, 50, 20)), rate_rps=100, p99_goal_ms=10)
    with pytest.raises(PlanError, match="must be positive"):
        make_plan(run(level(1, 50, 20)), rate_rps=0, p99_goal_ms=10)
    both = [run(level(1, 50, 20)), run(level(1, 60, 20), protocol="http")]
    with pytest.raises(PlanError, match=r"2 runs match \(m over grpc; m over http\)"):
        choose_run(both, "m")
    assert choose_run(both, "m", protocol="http").protocol == "http"
    with pytest.raises(PlanError, match="no measured run of other matches"):
        choose_run(both, "other")
    with pytest.raises(PlanError, match="no results at"):
        load_runs(Path("/nonexistent/results.json"))


def test_the_readme_example_is_what_maas_plan_prints_from_the_committed_curve() -> None:
    runs, fingerprint = load_runs(REFERENCE)
    plan = make_plan(choose_run(runs, "minilm_text", open_loop=False), 300, 100)
    text = render(plan, "benchmarks/results/reference/results.json", fingerprint)
    assert plan.replicas == 2 and plan.capacity.label == "8 users"
    readme = (ROOT / "README.md").read_text()
    assert text in readme, "README's `maas plan` example differs from what the command prints"
    command = [sys.executable, "-m", "maas.cli", "plan", "--model", "minilm_text", "--rate",
               "300", "--p99-ms", "100", "--loop", "closed"]  # fmt: skip
    printed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    assert printed.stdout.strip() == text
    refused = subprocess.run([*command[:-2], "--loop", "sideways"], capture_output=True,
                             text=True, cwd=ROOT, check=False)  # fmt: skip
    assert refused.returncode == 1 and re.search("--loop must be closed or open", refused.stderr)
