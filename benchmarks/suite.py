"""The reference benchmark: every goal of the benchmarks issue measured side by side in one run.

Starts its own tritonserver on free ports, then measures
- ResNet-50 over HTTP, gRPC and each with system shared memory (the overhead ladder), each
  sweep against the in-process limit of the served artifact at the batch Triton formed;
- the ResNet-50 image ensemble (JPEG bytes) against the naive FastAPI + PyTorch service;
- MiniLM on mixed-length real sentences (token tensors and raw text) against its limit;
- concurrency-1 latency of digits_cnn and of the ResNet-50 ensemble against the same pipeline
  run in-process;
and writes one report with plots, CSV, JSON and the machine's fingerprint.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maas.base.triton.repository import ModelRepository
from maas.serve import local_options, serve

from .baselines import Throughput, in_process_limit, latencies_ms, naive_service, pipeline
from .bench import BenchOptions, limit_batch, limit_model, run_bench
from .fingerprint import fingerprint
from .load_report import BenchRun

log = logging.getLogger(__name__)

GOAL_LIMIT_RATIO = 0.9
GOAL_NAIVE_RATIO = 8.0
GOAL_OVERHEAD_MS = {"digits_cnn": 2.0, "resnet50_image": 3.0}
LIMITED = ("resnet50", "resnet50_image", "minilm", "minilm_text")  # runs with a throughput goal


@dataclass(frozen=True)
class SuiteOptions:
    """How long and how hard the reference run measures."""

    repository: Path = Path("model_repository")
    out: Path = Path("benchmarks/results/reference")
    users: tuple[int, ...] = (1, 2, 4, 8, 16)
    text_users: tuple[int, ...] = (1, 8, 16, 32, 64)
    naive_users: tuple[int, ...] = (1, 2, 4)
    text_rates: tuple[float, ...] = (100.0, 200.0, 400.0, 600.0, 800.0)  # open loop, Poisson
    duration_s: float = 8.0
    warmup_s: float = 3.0
    latency_s: float = 5.0  # in-process concurrency-1 timing per pipeline
    limit_s: float = 5.0


@dataclass(frozen=True)
class Overhead:
    """Concurrency-1 p50 of a served model against the same work done in-process."""

    model: str
    protocol: str
    served_p50_ms: float
    in_process_p50_ms: float
    in_process: str  # what ran in-process

    @property
    def overhead_ms(self) -> float:
        """What serving adds."""
        return self.served_p50_ms - self.in_process_p50_ms


@dataclass(frozen=True)
class Goal:
    """One goal of the issue, as measured."""

    name: str
    target: str
    measured: str
    met: bool
    why: str = ""


@dataclass
class SuiteResult:
    """Everything the reference run measured."""

    runs: list[BenchRun] = field(default_factory=list)
    overheads: list[Overhead] = field(default_factory=list)
    ladder_in_process_p50_ms: float = 0.0

    def run(self, model: str, protocol: str, shm: bool = False) -> BenchRun:
        """The run of a model over a protocol."""
        return next(
            r
            for r in self.runs
            if (r.model, r.protocol, r.shm, r.open_loop) == (model, protocol, shm, False)
        )


def run_suite(options: SuiteOptions) -> tuple[SuiteResult, dict[str, object]]:
    """Start a server, measure everything, return the results and the machine's fingerprint."""
    repository = ModelRepository(options.repository)
    result = SuiteResult()
    with tempfile.TemporaryDirectory(prefix="maas-suite-") as scratch:
        # Triton's own HTTP port, no front: these numbers are the server's, not the proxy's.
        stack = local_options(
            options.repository, gateway=False, workdir=Path(scratch), exit_timeout_s=5
        )
        with serve(stack) as server:
            print_ = fingerprint(server.http_url)

            def bench(model: str, protocol: str, users: Sequence[int], shm: bool = False) -> None:
                url = server.grpc_url if protocol == "grpc" else server.http_url
                log.info("%s over %s%s: users %s", model, protocol, " + shm" * shm, list(users))
                bench_options = BenchOptions(
                    model=model,
                    protocol=protocol,
                    url=url,
                    stats_url=server.http_url,
                    users=tuple(users),
                    duration_s=options.duration_s,
                    warmup_s=options.warmup_s,
                    shm=shm,
                    repository=options.repository,
                    limit_seconds=0.0,  # measured once the server is down, below
                )
                result.runs.append(run_bench(bench_options))

            for protocol in ("http", "grpc"):
                for shm in (False, True):
                    bench("resnet50", protocol, options.users, shm)
            bench("resnet50_image", "grpc", options.users)
            bench("resnet50_image", "http", (1,))
            bench("minilm", "grpc", options.text_users)
            bench("minilm_text", "grpc", options.text_users)
            log.info("minilm_text over grpc, open loop: %s/s", list(options.text_rates))
            open_loop = BenchOptions(
                model="minilm_text",
                protocol="grpc",
                url=server.grpc_url,
                stats_url=server.http_url,
                users=(max(options.text_users),),
                rates=options.text_rates,
                arrival="poisson",
                duration_s=options.duration_s,
                warmup_s=options.warmup_s,
                repository=options.repository,
                limit_seconds=0.0,
            )
            rate_run = run_bench(open_loop)
            rate_run.notes.append("Open loop: Poisson arrivals at each offered rate.")
            result.runs.append(rate_run)
            for protocol in ("http", "grpc"):
                bench("digits_cnn", protocol, (1,))
        result.runs.append(run_naive(repository, options))
    # In-process baselines run with the server stopped: the machine is theirs alone.
    measure_limits(repository, result, options.limit_s)
    measure_overheads(repository, result, options.latency_s)
    return result, print_


def measure_limits(repository: ModelRepository, result: SuiteResult, seconds: float) -> None:
    """Each run's limit at its formed batch; one measurement per model and batch size."""
    measured: dict[tuple[str, int], Throughput] = {}
    for run in result.runs:
        if run.protocol == "naive" or run.model not in LIMITED or run.open_loop:
            continue
        key = (limit_model(run.model), limit_batch(repository, run))
        if key not in measured:
            log.info("in-process limit of %s at batch %d", *key)
            measured[key] = in_process_limit(repository, key[0], key[1], seconds)
        run.limit_model, run.limit = key[0], measured[key]


def run_naive(repository: ModelRepository, options: SuiteOptions) -> BenchRun:
    """The naive FastAPI + PyTorch service under the same Locust users and image bytes."""
    with naive_service("resnet50", repository) as url:
        log.info("naive service at %s: users %s", url, list(options.naive_users))
        bench_options = BenchOptions(
            model="resnet50_image",
            protocol="naive",
            url=url,
            users=options.naive_users,
            duration_s=options.duration_s,
            warmup_s=options.warmup_s,
            repository=options.repository,
            limit_seconds=0.0,
        )
        return run_bench(bench_options)


def measure_overheads(repository: ModelRepository, result: SuiteResult, seconds: float) -> None:
    """Concurrency-1 p50 in-process for every model measured at one user."""
    in_process: dict[str, tuple[str, float]] = {}
    for model in ("digits_cnn", "resnet50_image", "resnet50"):
        description, call = pipeline(repository, model)
        in_process[model] = (description, p50(call, seconds))
    result.ladder_in_process_p50_ms = in_process["resnet50"][1]
    for run in result.runs:
        one_user = next((level for level in run.levels if level.level.users == 1), None)
        if one_user is None or run.model not in in_process or run.protocol == "naive":
            continue
        description, value = in_process[run.model]
        protocol = run.protocol + (" + shm" if run.shm else "")
        result.overheads.append(Overhead(run.model, protocol, one_user.p50_ms, value, description))


def p50(call: Callable[[], object], seconds: float) -> float:
    """Median latency of back-to-back calls."""
    return float(np.median(latencies_ms(call, seconds)))


# --- goals -----------------------------------------------------------------------------------
