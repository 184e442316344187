"""`maas bench`: a Locust sweep of one served model, its in-process limit, and a report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from maas.base.errors import BenchError
from maas.base.triton.endpoints import DEFAULT_URLS
from maas.base.triton.names import IMAGE_ENSEMBLE_SUFFIX, TEXT_ENSEMBLE_SUFFIX
from maas.base.triton.repository import ModelRepository

from .baselines import in_process_limit
from .fingerprint import fingerprint
from .load_report import BenchRun, limit_line, write_bench_report
from .load_test import Level, LoadSpec, run_load_test

DEFAULT_RATE_USERS = 32  # users that share an open-loop schedule, unless --users says otherwise
RESULTS = Path("bench-results")  # where a report goes unless a folder is given


@dataclass(frozen=True)
class BenchOptions:
    """One `maas bench` run."""

    model: str
    protocol: str = "http"
    url: str = ""  # empty: the protocol's local default
    users: tuple[int, ...] = (4,)
    rates: tuple[float, ...] = ()  # offered requests/s; given: open loop at each rate
    arrival: str = "constant"
    duration_s: float = 10.0
    warmup_s: float = 3.0
    shm: bool = False
    stats_url: str = ""  # Triton's HTTP host:port; empty: --url for http, localhost:8000 for grpc
    repository: Path = Path("model_repository")
    image: Path | None = None
    limit_seconds: float = 5.0  # 0: skip the in-process limit
    progress: bool = True  # the load generator's line per level on stderr
    workers: int = 1  # Locust worker processes; 1: users in the driver itself

    def levels(self) -> tuple[Level, ...]:
        """Closed-loop levels, one per user count, or open-loop levels sharing one user pool."""
        if self.workers < 1:
            raise BenchError(f"--workers must be ≥ 1, got {self.workers}")
        if any(users < 1 for users in self.users):
            raise BenchError(f"--users must be ≥ 1, got {list(self.users)}")
        if not self.rates:
            return tuple(Level(users) for users in self.users)
        if len(self.users) > 1:
            raise BenchError("with --rate, give one --users value: the size of the user pool")
        if any(rate <= 0 for rate in self.rates):
            raise BenchError(f"--rate must be > 0 requests/s, got {list(self.rates)}")
        pool = self.users[0] if self.users else DEFAULT_RATE_USERS
        return tuple(Level(pool, rate) for rate in self.rates)

    def resolved_url(self) -> str:
        """The server to call."""
        if self.url:
            return self.url
        if self.protocol not in DEFAULT_URLS:
            raise BenchError(f"give --url for protocol {self.protocol!r}")
        return DEFAULT_URLS[self.protocol]

    def resolved_stats_url(self) -> str:
        """Where Triton's statistics are read; nothing for the naive service."""
        if self.protocol == "naive":
            return ""
        if self.stats_url:
            return self.stats_url
        return self.resolved_url() if self.protocol == "http" else DEFAULT_URLS["http"]


def limit_model(model: str) -> str:
    """The model whose artifact bounds `model`: the classifier behind an ensemble, or itself."""
    for suffix in (IMAGE_ENSEMBLE_SUFFIX, TEXT_ENSEMBLE_SUFFIX):
        if model.endswith(suffix):
            return model.removesuffix(suffix)
    return model


def listener_pid(host_port: str) -> int:
    """The local process listening on host:port (the server), for CPU accounting; 0: unknown."""
    import psutil

    port = int(host_port.rsplit(":", 1)[-1])
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:  # not allowed to look at other users' sockets
        return 0
    for connection in connections:
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            return connection.pid or 0
    return 0


def load_spec(options: BenchOptions, model: str | None = None) -> LoadSpec:
    """The Locust run for these options."""
    config = {
        "model": model or options.model,
        "url": options.resolved_url(),
        "protocol": options.protocol,
        "repository": str(options.repository),
        "shm": options.shm,
        "arrival": options.arrival,
        "image": str(options.image or ""),
    }
    return LoadSpec(
        config=config,
        levels=options.levels(),
        duration_s=options.duration_s,
        warmup_s=options.warmup_s,
        stats_url=options.resolved_stats_url(),
        server_pids=tuple(pid for pid in (listener_pid(options.resolved_url()),) if pid),
        progress=options.progress,
        workers=options.workers,
    )


def run_bench(options: BenchOptions) -> BenchRun:
    """Sweep the levels, then time the served artifact in-process at the batch Triton formed."""
    levels = run_load_test(load_spec(options))
    run = BenchRun(options.model, options.protocol, options.shm, levels)
    run.limit_model = limit_model(options.model)
    if options.limit_seconds > 0 and options.protocol != "naive":
        attach_limit(run, ModelRepository(options.repository), options.limit_seconds)
    return run


def limit_batch(repository: ModelRepository, run: BenchRun) -> int:
    """The batch Triton formed at the run's saturation, rounded, within the model's maximum."""
    model = run.limit_model or limit_model(run.model)
    max_batch = max(1, int(repository.read_config(model).max_batch_size))
    return min(max_batch, max(1, round(run.formed_batch())))


def attach_limit(run: BenchRun, repository: ModelRepository, seconds: float) -> None:
    """Measure the in-process limit of the run's model at its formed batch size."""
    batch = limit_batch(repository, run)
    run.limit = in_process_limit(repository, run.limit_model, batch, seconds)


def parse_list(text: str, kind: type[int] | type[float], what: str) -> tuple[float, ...]:
    """'1,2,4' → (1, 2, 4); a clear error for anything else."""
    try:
        return tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise BenchError(
            f"{what} must be a comma-separated list of numbers, got {text!r}"
        ) from None


def parse_levels(users: str, rates: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """--users and --rate as typed ('1,2,4', '' for none): user counts and offered rates."""
    counts = tuple(int(count) for count in parse_list(users, int, "--users"))
    return counts, parse_list(rates, float, "--rate")


def describe(options: BenchOptions, levels: Sequence[Level]) -> str:
    """The header line of a report."""
    mode = "open loop, " + options.arrival + " arrivals" if options.rates else "closed loop"
    if options.workers > 1:
        mode += f", users spread over {options.workers} Locust worker processes"
    return (
        f"# maas bench: {options.model} over {options.protocol}"
        f"{' + system shm' if options.shm else ''}\n\n"
        f"{mode}; levels {', '.join(level.label for level in levels)}; "
        f"{options.warmup_s:g} s warm-up and {options.duration_s:g} s measured per level; "
        f"server {options.resolved_url()}."
    )


@dataclass(frozen=True)
class BenchReport:
    """A finished `maas bench` run and where its report went."""

    run: BenchRun
    path: Path

    def lines(self) -> list[str]:
        """One line per level, then the in-process limit when it was measured."""
        lines = [f"{self.run.title} {level.summary()}" for level in self.run.levels]
        if self.run.limit is not None:
            lines.append(limit_line(self.run).replace("**", ""))
        return lines

    def raise_for_failures(self) -> None:
        """A BenchError if any request failed."""
        failed = sum(level.failures for level in self.run.levels)
        if failed:
            raise BenchError(f"{failed} requests failed; see {self.path}")


def bench_and_report(options: BenchOptions, out: Path | None = None) -> BenchReport:
    """Run the sweep and the limit, and write the report to out (default: RESULTS/<slug>)."""
    levels = options.levels()  # refuse bad levels before any load
    run = run_bench(options)
    folder = out or RESULTS / run.slug
    print_ = fingerprint(options.resolved_stats_url())
    return BenchReport(run, write_bench_report([run], folder, print_, describe(options, levels)))
