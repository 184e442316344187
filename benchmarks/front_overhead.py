"""What the gateway costs: the same load through HAProxy and straight to Triton, per protocol.

One `maas serve` stack; each case runs its two routes alternately, several rounds, so both
see the same machine state; the report gives medians and their ratio. Saturation runs on
Locust; one user runs on a lean loop of `tritonclient` calls in this process, since on two
cores Locust's own CPU would be most of what is measured. The gateway's CPU per request is
read from its process. The goals are issue 14's:
at one user (`digits_cnn`), at most 0.2 ms added to the median and at least 0.9 × direct
throughput over each protocol; at saturation (ResNet-50 tensors), at least 0.9 × direct
throughput over gRPC, with HTTP and system shared memory reported beside it.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from maas.base.errors import BenchError
from maas.base.triton.repository import ModelRepository
from maas.benchmarks.bench import BenchOptions, run_bench
from maas.benchmarks.fingerprint import fingerprint, render
from maas.benchmarks.load_test import Level, LevelResult, summarise_window
from maas.benchmarks.process_tree import tree_cpu_s
from maas.benchmarks.report import markdown_table, write_pair
from maas.benchmarks.workloads import build_workload
from maas.clients.checks import build_infer_inputs
from maas.clients.transport import API_KEY_ENV, auth_headers
from maas.serve import local_options, serve
from maas.serve.gateway import Gateway, HAProxy
from maas.serve.stack import ServingStack

log = logging.getLogger(__name__)

THROUGHPUT_GOAL = 0.9  # gateway / direct
P50_GOAL_MS = 0.2


@dataclass(frozen=True)
class FrontCase:
    """One model at one load over one protocol, measured both ways."""

    model: str
    users: int
    protocol: Literal["http", "grpc"]
    what: str
    judged_by: Literal["latency", "throughput"]
    shm: bool = False

    @property
    def label(self) -> str:
        """How the report names the case."""
        via = f"{self.protocol} + shared memory" if self.shm else self.protocol
        return f"`{self.model}`, {self.users} user(s), {via}"


CASES = (
    FrontCase("digits_cnn", 1, "http", "one user, small tensors", "latency"),
    FrontCase("digits_cnn", 1, "grpc", "one user, small tensors", "latency"),
    FrontCase("resnet50", 8, "grpc", "saturation, 602 KB tensors per request", "throughput"),
    FrontCase("resnet50", 8, "http", "saturation, 602 KB binary tensors", "throughput"),
    FrontCase("resnet50", 8, "http", "saturation, tensors in /dev/shm", "throughput", shm=True),
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
    direct_p99_ms: float = 0.0
    front_p99_ms: float = 0.0
    gateway_cpu_us: float = 0.0  # the gateway's CPU time per request through it

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
        if self.case.judged_by == "latency":
            return f"p50 added ≤ {P50_GOAL_MS} ms and ratio ≥ {THROUGHPUT_GOAL}"
        return f"ratio ≥ {THROUGHPUT_GOAL}"

    @property
    def goal_met(self) -> bool:
        """Whether the case meets its goal."""
        enough = self.throughput_ratio >= THROUGHPUT_GOAL
        if self.case.judged_by == "latency":
            return enough and self.p50_added_ms <= P50_GOAL_MS
        return enough


def measure_once(
    options: FrontBenchOptions, case: FrontCase, url: str, stats_url: str
) -> LevelResult:
    """One closed-loop level of the case against url: Locust, or the lean loop at one user."""
    if case.judged_by == "latency":
        return lean_loop(options, case, url)
    bench = BenchOptions(
        case.model,
        protocol=case.protocol,
        url=url,
        shm=case.shm,
        stats_url=stats_url,
        users=(case.users,),
        duration_s=options.duration_s,
        warmup_s=options.warmup_s,
        repository=options.repository,
        limit_seconds=0.0,
    )
    (level,) = run_bench(bench).levels
    return level


def lean_loop(options: FrontBenchOptions, case: FrontCase, url: str) -> LevelResult:
    """Back-to-back calls from one tritonclient client: warm-up, then a timed window."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    module = grpcclient if case.protocol == "grpc" else httpclient
    (inputs,) = build_workload(ModelRepository(options.repository), case.model).requests[:1]
    tensors = build_infer_inputs(case.model, inputs, module.InferInput)
    client = module.InferenceServerClient(url)
    headers = auth_headers()  # $MAAS_API_KEY, for a gateway that requires keys
    latencies: list[float] = []
    try:
        for phase, seconds in (("warm-up", options.warmup_s), ("window", options.duration_s)):
            latencies.clear()
            began = time.perf_counter()
            ends = began + seconds
            while time.perf_counter() < ends:
                sent = time.perf_counter()
                client.infer(case.model, tensors, headers=headers)
                latencies.append((time.perf_counter() - sent) * 1000.0)
            log.debug("%s: %d calls", phase, len(latencies))
        elapsed = time.perf_counter() - began
    finally:
        client.close()
    return summarise_window(Level(1), elapsed, latencies, [], 0, {}, (len(latencies), 0), 0)


@contextmanager
def api_key_in_environment(key: str) -> Iterator[None]:
    """$MAAS_API_KEY set to key (unset when empty) for the block: Locust's processes inherit it."""
    before = os.environ.pop(API_KEY_ENV, None)
    if key:
        os.environ[API_KEY_ENV] = key
    try:
        yield
    finally:
        os.environ.pop(API_KEY_ENV, None)
        if before is not None:
            os.environ[API_KEY_ENV] = before


def measure_case(options: FrontBenchOptions, case: FrontCase, stack: ServingStack) -> FrontResult:
    """Straight to Triton against through the gateway."""
    direct = stack.triton.grpc_url if case.protocol == "grpc" else stack.triton.http_url
    routes = {
        "direct": Route(direct),
        "front": Route(stack.endpoints.url(case.protocol), stack.gateway),
    }
    return measure_routes(options, case, routes, stack.triton.http_url)


@dataclass(frozen=True)
class Route:
    """One way to the server: its url, the gateway on it (for its CPU), the key it wants."""

    url: str
    gateway: Gateway | None = None
    api_key: str = ""


def measure_routes(
    options: FrontBenchOptions, case: FrontCase, routes: dict[str, Route], stats_url: str
) -> FrontResult:
    """Alternate the two routes ("direct" and "front"), round after round; medians of each."""
    levels: dict[str, list[LevelResult]] = {"direct": [], "front": []}
    gateway_cpu: list[float] = []
    for round_ in range(options.rounds):
        order = ("direct", "front") if round_ % 2 == 0 else ("front", "direct")
        for name in order:
            route = routes[name]
            cpu_before = tree_cpu_s(route.gateway.pid or 0) if route.gateway else 0.0
            with api_key_in_environment(route.api_key):
                level = measure_once(options, case, route.url, stats_url)
            if name == "front" and route.gateway is not None:
                calls = max(1, level.requests + level.failures)
                spent = tree_cpu_s(route.gateway.pid or 0) - cpu_before
                gateway_cpu.append(spent * 1e6 / calls)
            log.info("%s %s round %d: %s", case.label, name, round_ + 1, level.summary())
            levels[name].append(level)

    def median(route: str, field: str) -> float:
        return float(statistics.median(getattr(level, field) for level in levels[route]))

    return FrontResult(
        case,
        direct_rps=median("direct", "throughput_rps"),
        front_rps=median("front", "throughput_rps"),
        direct_p50_ms=median("direct", "p50_ms"),
        front_p50_ms=median("front", "p50_ms"),
        failures=sum(level.failures for route in levels.values() for level in route),
        direct_p99_ms=median("direct", "p99_ms"),
        front_p99_ms=median("front", "p99_ms"),
        gateway_cpu_us=float(statistics.median(gateway_cpu)) if gateway_cpu else 0.0,
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
            r.case.label,
            r.case.what,
            f"{r.direct_rps:.1f}",
            f"{r.front_rps:.1f}",
            f"{r.throughput_ratio:.3f}",
            f"{r.direct_p50_ms:.3f}",
            f"{r.front_p50_ms:.3f}",
            f"{r.p50_added_ms:+.3f}",
            f"{r.direct_p99_ms:.2f} / {r.front_p99_ms:.2f}",
            f"{r.gateway_cpu_us:.0f}",
            r.failures,
            f"{r.goal}: {'met' if r.goal_met else 'MISSED'}",
        )
        for r in results
    ]
    table = markdown_table(
        ("case", "what it shows", "direct req/s", "gateway req/s", "ratio", "direct p50 ms",
         "gateway p50 ms", "p50 added ms", "p99 ms direct / gateway", "gateway CPU µs/req",
         "failed", "goal"),
        rows,
    )  # fmt: skip
    return f"""# What the gateway costs (HAProxy + Lua checks vs Triton's own ports)

Same `maas serve` stack; each case ran its two routes alternately, {options.rounds} rounds of
{options.duration_s:.0f} s each (+{options.warmup_s:.0f} s warm-up), closed loop; medians shown.
One user: back-to-back `tritonclient` calls (binary tensors over HTTP) from one lean loop, so
the client's own CPU stays small; saturation: Locust, 8 users.
Every request through the gateway was admitted per model and, over HTTP, checked against the
model's config before Triton saw it; gRPC calls were routed by the model name read from the
request's first bytes. With shared memory, tensors stay in `/dev/shm` and only the request's
JSON crosses the gateway.

{table}

On these two cores HAProxy's CPU is taken from Triton's, so at saturation any CPU the gateway
spends shows up as lost throughput.

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
