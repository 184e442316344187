"""What the gateway costs over HTTP: the same load through HAProxy and straight to Triton.

One `maas serve` stack; each case runs its two routes alternately, several rounds, so both
see the same machine state; the report gives medians and their ratio. Each case is judged on
what it shows: the one-user case on the median latency the front adds (goal ≤ 0.3 ms), the
saturation case on throughput (goal: front ≥ 97 % of direct).
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from maas.base.errors import BenchError
from maas.benchmarks.bench import BenchOptions, run_bench
from maas.benchmarks.fingerprint import fingerprint, render
from maas.benchmarks.load_test import LevelResult
from maas.benchmarks.report import markdown_table, write_pair
from maas.serve import local_options, serve
from maas.serve.gateway import HAProxy
from maas.serve.stack import ServingStack

log = logging.getLogger(__name__)

THROUGHPUT_GOAL = 0.97  # front / direct
P50_GOAL_MS = 0.3


@dataclass(frozen=True)
class FrontCase:
    """One model at one load, measured both ways."""

    model: str
    users: int
    what: str
    judged_by: Literal["p50", "throughput"]


CASES = (
    FrontCase("digits_cnn", 1, "latency: one user, small tensors", "p50"),
    FrontCase(
        "resnet50", 8, "throughput: saturation, 602 KB binary tensors per request", "throughput"
    ),
)


@dataclass(frozen=True)
class FrontBenchOptions:
    """A `maas bench-front` run."""

    repository: Path = Path("model_repository")
    out: Path = Path("benchmarks/results/front")
    rounds: int = 5
    duration_s: float = 10.0
    warmup_s: float = 2.0


@dataclass(frozen=True)
class FrontResult:
    """Medians of the rounds for one case."""

    case: FrontCase
    direct_rps: float
    front_rps: float
    direct_p50_ms: float
    front_p50_ms: float
    failures: int

    @property
    def throughput_ratio(self) -> float:
        """Front throughput over direct throughput."""
        return self.front_rps / self.direct_rps

    @property
    def p50_added_ms(self) -> float:
        """Median latency the front adds."""
        return self.front_p50_ms - self.direct_p50_ms

    @property
    def goal(self) -> str:
        """The case's goal, in words."""
        if self.case.judged_by == "p50":
            return f"p50 added ≤ {P50_GOAL_MS} ms"
        return f"throughput ratio ≥ {THROUGHPUT_GOAL}"

    @property
    def goal_met(self) -> bool:
        """Whether the case meets its goal."""
        if self.case.judged_by == "p50":
            return self.p50_added_ms <= P50_GOAL_MS
        return self.throughput_ratio >= THROUGHPUT_GOAL


def measure_once(
    options: FrontBenchOptions, case: FrontCase, url: str, stats_url: str
) -> LevelResult:
    """One closed-loop level over HTTP against url."""
    bench = BenchOptions(
        case.model,
        protocol="http",
        url=url,
        stats_url=stats_url,
        users=(case.users,),
        duration_s=options.duration_s,
        warmup_s=options.warmup_s,
        repository=options.repository,
        limit_seconds=0.0,
    )
    (level,) = run_bench(bench).levels
    return level


def measure_case(options: FrontBenchOptions, case: FrontCase, stack: ServingStack) -> FrontResult:
    """Alternate the routes, round after round; medians of each."""
    routes = {"direct": stack.triton.http_url, "front": stack.http_url}
    levels: dict[str, list[LevelResult]] = {"direct": [], "front": []}
    for round_ in range(options.rounds):
        order = ("direct", "front") if round_ % 2 == 0 else ("front", "direct")
        for route in order:
            level = measure_once(options, case, routes[route], stack.triton.http_url)
            log.info("%s %s round %d: %s", case.model, route, round_ + 1, level.summary())
            levels[route].append(level)

    def median(route: str, field: str) -> float:
        return float(statistics.median(getattr(level, field) for level in levels[route]))

    return FrontResult(
        case,
        direct_rps=median("direct", "throughput_rps"),
        front_rps=median("front", "throughput_rps"),
        direct_p50_ms=median("direct", "p50_ms"),
        front_p50_ms=median("front", "p50_ms"),
        failures=sum(level.failures for route in levels.values() for level in route),
    )


def run_front_overhead(options: FrontBenchOptions) -> tuple[list[FrontResult], dict[str, object]]:
    """Start a stack with the front and measure every case."""
    HAProxy.locate()  # without HAProxy there is nothing to measure: say so before starting Triton
    with serve(local_options(options.repository)) as stack:
        if stack.gateway is None:
            raise BenchError("no gateway to measure")
        print_ = fingerprint(stack.triton.http_url)
        results = [measure_case(options, case, stack) for case in CASES]
    return results, print_


def report_markdown(results: list[FrontResult], options: FrontBenchOptions, print_: str) -> str:
    """The report: one row per case, the goals, the machine."""
    rows = [
        (
            f"`{r.case.model}`, {r.case.users} user(s)",
            r.case.what,
            f"{r.direct_rps:.1f}",
            f"{r.front_rps:.1f}",
            f"{r.throughput_ratio:.3f}",
            f"{r.direct_p50_ms:.3f}",
            f"{r.front_p50_ms:.3f}",
            f"{r.p50_added_ms:+.3f}",
            r.failures,
            f"{r.goal}: {'met' if r.goal_met else 'MISSED'}",
        )
        for r in results
    ]
    table = markdown_table(
        ("case", "what it shows", "direct req/s", "front req/s", "ratio", "direct p50 ms",
         "front p50 ms", "p50 added ms", "failed", "goal"),
        rows,
    )  # fmt: skip
    return f"""# Gateway overhead over HTTP (HAProxy + Lua checks vs Triton's HTTP port directly)

Same server, same load generator (Locust, `tritonclient.http`, binary tensors); each case ran
its two routes alternately, {options.rounds} rounds of {options.duration_s:.0f} s each
(+{options.warmup_s:.0f} s warm-up); medians shown. Every request through the front was checked
against the model's config (`maas_front.lua`) before Triton saw it.

{table}

Each case is judged on what it shows: one user on the median latency the front adds,
saturation on throughput (on these two cores the gateway's CPU is taken from Triton's). One user's
requests per second are set by rare 500 ms holds in Triton 2.51's dynamic batcher (a lost
wake-up once a queue policy is configured; see the README's Numbers), seen on both routes and
more often through the front; they do not move the median.

{print_}
"""


def write_front_report(
    results: list[FrontResult], options: FrontBenchOptions, print_: dict[str, object]
) -> Path:
    """report.md and report.json in options.out."""
    rows = [
        {**asdict(r), "throughput_ratio": r.throughput_ratio, "p50_added_ms": r.p50_added_ms}
        for r in results
    ]
    return write_pair(
        options.out, "report", rows, report_markdown(results, options, render(print_))
    )
