"""The benchmark commands: bench, bench-suite/-peers/-front/-padding/-targets, soak.

maas.benchmarks loads Locust and gevent (and maas.export torch), so each command imports what
it runs inside itself: `maas --help` and the other commands start without them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .common import (
    DEFAULT_REPOSITORY,
    ApiKeyOption,
    DurationOption,
    OutOption,
    RepositoryOption,
    UrlOption,
    WarmupOption,
    echo_lines,
    setup_logging,
    use_api_key,
    user_errors,
)

BenchModelArgument = Annotated[
    str, typer.Argument(help="Served model: resnet50_image (JPEG bytes), minilm_text, …")
]
BenchProtocolOption = Annotated[
    str, typer.Option(help="http, grpc, or naive (the baseline service).")
]
UsersOption = Annotated[
    str, typer.Option(help="Concurrent users; a list (1,2,4,8) sweeps them. With --rate: pool.")
]
RateOption = Annotated[
    str, typer.Option(help="Offered requests/s (open loop); a list sweeps them.")
]
ArrivalOption = Annotated[str, typer.Option(help="Open-loop spacing: constant or poisson.")]
ShmOption = Annotated[bool, typer.Option(help="Send inputs through system shared memory.")]
StatsUrlOption = Annotated[
    str, typer.Option(help="Triton HTTP host:port for statistics [default: from --url].")
]
LimitOption = Annotated[
    float, typer.Option(min=0.0, help="Seconds timing the in-process limit (0: skip).")
]
BenchOutOption = Annotated[
    Path | None, typer.Option(help="Report folder [default: bench-results/<model>-<protocol>].")
]
ImageOption = Annotated[
    Path | None, typer.Option(help="Image file to send [default: a bundled photograph].")
]
WorkersOption = Annotated[
    int, typer.Option(min=1, help="Locust worker processes sharing the users (1: one process).")
]
RunDurationOption = Annotated[float, typer.Option(min=0.5, help="Measured seconds per run.")]
RunWarmupOption = Annotated[float, typer.Option(min=0.0, help="Unmeasured seconds per run.")]


def bench_command(
    model: BenchModelArgument,
    url: UrlOption = None,
    protocol: BenchProtocolOption = "http",
    users: UsersOption = "4",
    rate: RateOption = "",
    arrival: ArrivalOption = "constant",
    duration: DurationOption = 10.0,
    warmup: WarmupOption = 3.0,
    shm: ShmOption = False,
    stats_url: StatsUrlOption = "",
    limit_seconds: LimitOption = 5.0,
    out: BenchOutOption = None,
    image: ImageOption = None,
    repository: RepositoryOption = DEFAULT_REPOSITORY,
    api_key: ApiKeyOption = "",
    workers: WorkersOption = 1,
) -> None:
    """Headless Locust load test of a running server, with Triton's breakdown and a report."""
    from maas.benchmarks.bench import BenchOptions, bench_and_report, parse_levels

    use_api_key(api_key)
    with user_errors():
        user_counts, rates = parse_levels(users, rate)
        options = BenchOptions(
            model=model,
            protocol=protocol,
            url=url or "",
            users=user_counts,
            rates=rates,
            arrival=arrival,
            duration_s=duration,
            warmup_s=warmup,
            shm=shm,
            stats_url=stats_url,
            repository=repository,
            image=image,
            limit_seconds=limit_seconds,
            workers=workers,
        )
        report = bench_and_report(options, out)
        echo_lines(report.lines())
        typer.echo(f"report  {report.path}")
        report.raise_for_failures()


def bench_suite_command(
    out: OutOption = Path("benchmarks/results/reference"),
    duration: DurationOption = 8.0,
    warmup: WarmupOption = 3.0,
    peers: Annotated[
        bool, typer.Option(help="Also run bench-peers into OUT/peers (~40 min more).")
    ] = False,
    repository: RepositoryOption = DEFAULT_REPOSITORY,
) -> None:
    """Reference run: every benchmark goal side by side (starts its own server; ~10 min)."""
    from maas.benchmarks.peers_bench import PeersOptions, run_peers
    from maas.benchmarks.peers_report import write_peers_report
    from maas.benchmarks.suite import SuiteOptions, run_suite
    from maas.benchmarks.suite_report import goals, write_suite_report

    setup_logging()
    with user_errors():
        options = SuiteOptions(repository=repository, out=out, duration_s=duration, warmup_s=warmup)
        result, print_ = run_suite(options)
        against = None
        if peers:
            peers_options = PeersOptions(repository=repository, out=out / "peers")
            against = run_peers(peers_options)
            write_peers_report(against, peers_options, peers_options.out, print_)
        path = write_suite_report(result, print_, options, command_line(), against)
        for goal in goals(result):
            typer.echo(f"{'met   ' if goal.met else 'MISSED'} {goal.name}: {goal.measured}")
        typer.echo(f"report  {path}")


def bench_peers_command(
    out: OutOption = Path("benchmarks/results/peers"),
    tasks: Annotated[
        str, typer.Option(help="Tasks: resnet50-jpeg, resnet50-tensor, minilm-text.")
    ] = "resnet50-jpeg,resnet50-tensor,minilm-text",
    peers: Annotated[str, typer.Option(help="Peers: bentoml, ray, torchserve.")] = (
        "bentoml,ray,torchserve"
    ),
    users: UsersOption = "1,4,16,32",
    rates: Annotated[
        str, typer.Option(help="Offered requests/s for every task [default: per task].")
    ] = "",
    duration: DurationOption = 8.0,
    warmup: WarmupOption = 3.0,
    every_setting: Annotated[
        bool, typer.Option(help="Each peer under every setting (off: its first only).")
    ] = True,
    naive: Annotated[bool, typer.Option(help="The naive FastAPI service as the floor.")] = True,
    from_results: Annotated[
        Path | None, typer.Option(help="Write the report from a saved results.json; no load.")
    ] = None,
    repository: RepositoryOption = DEFAULT_REPOSITORY,
) -> None:
    """Against the peers: BentoML, Ray Serve, TorchServe on the same artifacts (~40 min)."""
    from maas.benchmarks.bench import parse_list
    from maas.benchmarks.fingerprint import fingerprint
    from maas.benchmarks.peers_bench import PeersOptions, load_result, run_peers
    from maas.benchmarks.peers_report import goals, write_peers_report

    setup_logging()
    with user_errors():
        options = PeersOptions(
            repository=repository,
            out=out,
            tasks=split_names(tasks),
            peers=split_names(peers),
            users=tuple(int(count) for count in parse_list(users, int, "--users")),
            rates=task_rates(split_names(tasks), parse_list(rates, float, "--rate")),
            duration_s=duration,
            warmup_s=warmup,
            every_setting=every_setting,
            naive=naive,
        )
        result = load_result(from_results) if from_results else run_peers(options)
        path = write_peers_report(result, options, out, result.machine or fingerprint())
        for goal in goals(result):
            typer.echo(
                f"{'met   ' if goal.met else 'MISSED'} {goal.task} {goal.name}: {goal.measured}"
            )
        for name, reason in result.unavailable.items():
            typer.echo(f"not run {name}: {reason}")
        typer.echo(f"report  {path}")


def task_rates(tasks: tuple[str, ...], rates: tuple[float, ...]) -> dict[str, tuple[float, ...]]:
    """The same offered rates for every task, or each task's own when none are given."""
    from maas.benchmarks.peers_bench import RATES

    return {task: rates or RATES.get(task, ()) for task in tasks}


def split_names(text: str) -> tuple[str, ...]:
    """'a, b' → ('a', 'b')."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def bench_keys_command(
    out: OutOption = Path("benchmarks/results/keys"),
    rounds: Annotated[int, typer.Option(min=1, help="Alternating rounds per case.")] = 3,
    duration: RunDurationOption = 8.0,
    warmup: RunWarmupOption = 2.0,
    repository: RepositoryOption = DEFAULT_REPOSITORY,
) -> None:
    """What keys, limits and metering cost: a keyed and an open gateway before one Triton."""
    from maas.benchmarks.front_overhead import FrontBenchOptions
    from maas.benchmarks.keys_overhead import goal_of, run_keys_overhead, write_keys_report

    setup_logging()
    with user_errors():
        options = FrontBenchOptions(repository, out, rounds, duration, warmup)
        results, print_ = run_keys_overhead(options)
        for result in results:
            goal, met = goal_of(result)
            typer.echo(
                f"{result.case.label}: throughput keyed/open {result.throughput_ratio:.3f}, "
                f"p50 added {result.p50_added_ms:+.3f} ms; {goal}: {'met' if met else 'MISSED'}"
            )
        typer.echo(f"report  {write_keys_report(results, options, print_)}")


def bench_front_command(
    out: OutOption = Path("benchmarks/results/front"),
    rounds: Annotated[int, typer.Option(min=1, help="Alternating rounds per case.")] = 5,
    duration: RunDurationOption = 10.0,
    warmup: RunWarmupOption = 2.0,
    repository: RepositoryOption = DEFAULT_REPOSITORY,
) -> None:
    """What the gateway costs per protocol: the same load through it and straight to Triton."""
    from maas.benchmarks.front_overhead import (
        FrontBenchOptions,
        run_front_overhead,
        write_front_report,
    )

    setup_logging()
    with user_errors():
        options = FrontBenchOptions(repository, out, rounds, duration, warmup)
        results, print_ = run_front_overhead(options)
        for result in results:
            typer.echo(
                f"{result.case.label}: throughput gateway/direct "
                f"{result.throughput_ratio:.3f}, p50 added {result.p50_added_ms:+.3f} ms; "
                f"{result.goal}: {'met' if result.goal_met else 'MISSED'}"
            )
        typer.echo(f"report  {write_front_report(results, options, print_)}")


def soak_command(
    duration: Annotated[float, typer.Option(min=1, help="Seconds of traffic.")] = 600.0,
    users: Annotated[int, typer.Option(min=1, help="Concurrent workers.")] = 4,
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds per sample.")] = 10.0,
    out: OutOption = Path("benchmarks/results/soak"),
    http_url: Annotated[str, typer.Option(help="Soak this server's HTTP endpoint.")] = "",
    grpc_url: Annotated[str, typer.Option(help="…and its gRPC endpoint (both or neither).")] = "",
    repository: RepositoryOption = DEFAULT_REPOSITORY,
) -> None:
    """Mixed traffic to every model over both protocols; report failures, p99 drift and memory.

    Without URLs it starts its own `maas serve`. Exits 1 if a request failed or memory grew.
    """
    from maas.benchmarks.soak import SoakOptions, passed, run_soak, verdict, write_soak_report

    setup_logging()
    with user_errors():
        if bool(http_url) != bool(grpc_url):
            raise typer.BadParameter("give both --http-url and --grpc-url, or neither")
        options = SoakOptions(repository, duration, users, interval, out, http_url, grpc_url)
        result = run_soak(options)
        path = write_soak_report(result, command_line())
        for name, measured, ok in verdict(result):
            typer.echo(f"{'ok    ' if ok else 'FAILED'} {name}: {measured}")
        typer.echo(f"report  {path}")
        if not passed(result):
            raise typer.Exit(1)


def bench_padding_command(
    repository: RepositoryOption = DEFAULT_REPOSITORY,
    model: Annotated[str, typer.Option(help="Exported text model.")] = "minilm",
    concurrency: Annotated[int, typer.Option(min=1, help="Concurrent clients.")] = 8,
    copies: Annotated[int, typer.Option(min=1, help="Times the sentence set is sent.")] = 4,
    output: Annotated[Path, typer.Option(help="Folder for padding.md and padding.json.")] = Path(
        "results"
    ),
) -> None:
    """Measure padding waste of each batching strategy on a mixed-length text workload."""
    from maas.benchmarks.headers import padding_header
    from maas.benchmarks.text_padding import render_table, run_padding_benchmark, write_report

    setup_logging()
    with user_errors():
        results = run_padding_benchmark(repository, model, concurrency, copies)
        typer.echo(render_table(results))
        header = padding_header(model, results, concurrency, copies)
        typer.echo(f"report  {write_report(results, output, header)}")


def bench_targets_command(
    models: Annotated[
        list[str] | None, typer.Argument(help="Registered models [default: all].")
    ] = None,
    seconds: Annotated[float, typer.Option(help="Measured seconds per batch size.")] = 2.0,
    output: Annotated[Path, typer.Option(help="Folder for targets.md and targets.json.")] = Path(
        "results"
    ),
) -> None:
    """In-process throughput of every export target at batch 1 and the best batch."""
    from maas.benchmarks.headers import targets_header
    from maas.benchmarks.targets import bench_targets, render_table, write_report
    from maas.export import model_names

    setup_logging()
    with user_errors():
        rows = bench_targets(models or model_names(), seconds)
        typer.echo(render_table(rows))
        typer.echo(f"report  {write_report(rows, output, targets_header(seconds))}")


def command_line() -> str:
    """The command as the user typed it, for reports."""
    return "maas " + " ".join(sys.argv[1:])


def bench_generate_command(
    model: Annotated[
        str,
        typer.Option(
            help="Exported text-generation model, or gptwide_random (built here: seeded random "
            "weights, 20M parameters, for speed work)."
        ),
    ] = "tinygpt",
    out: OutOption = Path("benchmarks/results/generation"),
    streams: Annotated[str, typer.Option(help="Concurrent streams per level, e.g. 1,4,16.")] = (
        "1,4,16"
    ),
    duration: RunDurationOption = 15.0,
    warmup: RunWarmupOption = 3.0,
    max_tokens: Annotated[int, typer.Option(min=1, help="Tokens per request.")] = 48,
    protocol: Annotated[str, typer.Option(help="http or grpc, for maas.")] = "grpc",
    repository: RepositoryOption = DEFAULT_REPOSITORY,
) -> None:
    """Streamed generation side by side: in-process, one-at-a-time, maas with in-flight batching."""
    from maas.benchmarks.generation_bench import (
        GenerationBenchOptions,
        run_generation_bench,
        write_generation_report,
    )
    from maas.benchmarks.headers import machine_line

    setup_logging()
    with user_errors():
        levels = tuple(int(n) for n in streams.split(",") if n.strip())
        if not levels or min(levels) < 1:
            raise typer.BadParameter(f"--streams must be positive counts, got {streams!r}")
        options = GenerationBenchOptions(
            repository, out, model, levels, duration, warmup, max_tokens, protocol
        )
        results = run_generation_bench(options, lambda what: typer.echo(what, err=True))
        for result in results:
            typer.echo(
                f"{result.system:14} {result.concurrency:3} streams  "
                f"{result.tokens_per_s:8.1f} tokens/s  TTFT p50 {result.ttft_p50_ms:7.2f} ms  "
                f"ITL p50 {result.itl_p50_ms:6.2f} p99 {result.itl_p99_ms:6.2f} ms  "
                f"failed {result.failures}"
            )
        typer.echo(f"report  {write_generation_report(results, options, machine_line())}")
