"""The `maas` command line: parses, calls the library, prints one clear line per error."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from maas.base.errors import ExportError, MaasError, ServerError

if TYPE_CHECKING:
    from maas.clients import Classification
    from maas.clients.core import Protocol
    from maas.export import ExportResult, ModelRepository

app = typer.Typer(
    help="Model as a service on Triton: export models, serve them, call and benchmark them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

DEFAULT_REPOSITORY = Path(os.environ.get("MAAS_REPOSITORY", "model_repository"))
RepositoryOption = Annotated[
    Path, typer.Option("--repository", "-r", help="Triton model repository (env MAAS_REPOSITORY).")
]
UrlOption = Annotated[
    str | None,
    typer.Option(help="host:port of the server [default: localhost:8000 http, :8001 grpc]."),
]
ProtocolOption = Annotated[str, typer.Option(help="http or grpc.")]


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM as Ctrl-C: commands that start servers (soak, bench, demo) stop them."""
    raise KeyboardInterrupt


def stop_requested() -> threading.Event:
    """An event that Ctrl-C or SIGTERM sets, for commands that run until told to stop."""
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()  # only flag it: stopping inside a signal handler can deadlock on wait()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stopping


@app.callback()
def main() -> None:
    """Model as a service on Triton."""
    signal.signal(signal.SIGTERM, interrupt)  # `serve` and `front` install their own


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's typed errors into one line on stderr and exit code 1."""
    try:
        yield
    except MaasError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None


def setup_logging(verbose: bool = False) -> None:
    """Progress lines on stderr."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )


def check_protocol(protocol: str) -> Protocol:
    """Refuse anything but http and grpc."""
    if protocol not in ("http", "grpc"):
        raise typer.BadParameter(f"protocol must be http or grpc, got {protocol!r}")
    return "http" if protocol == "http" else "grpc"


def describe_export(result: ExportResult) -> str:
    """One line: where the artifact went and how well it matched its source."""
    report = result.report
    measures = []
    if report.top1_agreement is not None:
        measures.append(f"top-1 agreement {report.top1_agreement:.4f}")
    if report.min_cosine is not None:
        measures.append(f"min cosine {report.min_cosine:.7f}")
    measures += [f"{key} {value:.4f}" for key, value in result.built.metrics.items()]
    measures += [
        f"{o.name} max abs {o.max_abs_error:.2e} / rel {o.max_rel_error:.2e}"
        for o in report.outputs
    ]
    where = f"{result.spec.name}: ONNX verified on {report.samples} inputs"
    lines = [f"{where} ({'; '.join(measures)})"]
    for candidate in result.candidates:
        speed = ", ".join(f"b{t.batch} {t.samples_per_s:.1f}/s" for t in candidate.throughput)
        verdict = speed if candidate.status == "accepted" else "; ".join(candidate.reasons)
        chosen = "→ served" if candidate.target == result.target else "        "
        lines.append(f"  {chosen} {candidate.target.name:17} {candidate.status:8} {verdict}")
    lines.append(f"  artifact {result.artifact}")
    return "\n".join(lines)


def check_exports(repository: ModelRepository, models: list[str] | None) -> None:
    """Print one verdict per model version; exit 1 if any differs beyond tolerance."""
    from maas.export.reproduce import check_reproducible

    results = check_reproducible(repository, models or None)
    for result in results:
        notes = f": {'; '.join(result.notes)}" if result.notes else ""
        typer.echo(f"{result.model} v{result.version}: {result.verdict}{notes}")
    if not all(result.ok for result in results):
        raise ExportError("the re-export differs from the committed repository (see above)")


@app.command("export")
def export_command(
    models: Annotated[
        list[str] | None, typer.Argument(help="Registered model names [default: all].")
    ] = None,
    repository: RepositoryOption = DEFAULT_REPOSITORY,
    version: Annotated[int, typer.Option(min=1, help="Version folder to write.")] = 1,
    list_models: Annotated[
        bool, typer.Option("--list", help="List registered models and exit.")
    ] = False,
    hf: Annotated[
        Path | None, typer.Option(help="Export a local Hugging Face encoder folder instead.")
    ] = None,
    task: Annotated[
        str, typer.Option(help="With --hf: feature-extraction or text-classification.")
    ] = "feature-extraction",
    name: Annotated[str | None, typer.Option(help="With --hf: the served model name.")] = None,
    truncation: Annotated[
        bool, typer.Option(help="With --hf: cut texts over the maximum length (else reject).")
    ] = True,
    target: Annotated[
        list[str] | None,
        typer.Option(help="Only try these targets (repeatable); one forces it [default: all]."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Re-export into a scratch folder and compare.")
    ] = False,
) -> None:
    """Export models to ONNX, verify them against their source and write the repository."""
    from maas.export import ModelRepository, export_model, get_spec, model_names
    from maas.export.text import hf_text_spec, text_task

    with user_errors():
        if list_models:
            for registered in model_names():
                spec = get_spec(registered)
                typer.echo(f"{registered:14} {spec.description}; weights: {spec.weights}")
            return
        setup_logging()
        if check:
            check_exports(ModelRepository(repository), models)
            return
        if hf is not None:
            if models or name is None:
                raise typer.BadParameter("--hf exports one folder: give --name and no model names")
            specs = [hf_text_spec(hf, text_task(task), name, truncation=truncation)]
        else:
            specs = [get_spec(registered) for registered in (models or model_names())]
        repo = ModelRepository(repository)
        for spec in specs:
            typer.echo(describe_export(export_model(spec, repo, version=version, targets=target)))


@app.command("serve")
def serve_command(
    repository: RepositoryOption = DEFAULT_REPOSITORY,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option(help="HTTP/REST port.")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="gRPC port.")] = 8001,
    metrics_port: Annotated[int, typer.Option(help="Prometheus metrics port.")] = 8002,
    log_verbose: Annotated[int, typer.Option(help="Triton's verbose log level (0 = off).")] = 0,
    workdir: Annotated[
        Path | None, typer.Option(help="Where the serving repository and log go.")
    ] = None,
    exit_timeout: Annotated[
        int, typer.Option(help="Seconds shutdown waits for in-flight requests.")
    ] = 30,
    padding: Annotated[
        str,
        typer.Option(help="Variable-length batching: buckets (rows grouped by length) or longest."),
    ] = "buckets",
    control_key: Annotated[
        str,
        typer.Option(
            envvar="MAAS_CONTROL_KEY",
            help="Turn model control on (load/unload over the API) for requests carrying this "
            "key in the maas-control-key header; off when not given.",
        ),
    ] = "",
    allow_unprotected_http: Annotated[
        bool,
        typer.Option(
            help="Where nginx is missing, serve Triton's own HTTP port publicly anyway "
            "(one malformed request can crash it); otherwise HTTP stays on loopback."
        ),
    ] = False,
    max_body_mb: Annotated[
        float, typer.Option(min=1, help="Largest HTTP request body the front lets through.")
    ] = 32,
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate: gRPC serves TLS only (with --tls-key).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
) -> None:
    """Run the real tritonserver behind its HTTP front until Ctrl-C or SIGTERM.

    If tritonserver dies it is restarted with backoff; readiness is false meanwhile.
    """
    from maas.serve.embedded import ServerOptions
    from maas.serve.stack import ServingStack, StackOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with user_errors():
        server_options = ServerOptions(
            repository=repository,
            http_port=http_port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            host=host,
            log_verbose=log_verbose,
            workdir=workdir,
            exit_timeout_s=exit_timeout,
            padding_strategy=padding,
            control_key=control_key,
            tls_cert=tls_cert,
            tls_key=tls_key,
        )
        options = StackOptions(
            server_options,
            allow_unprotected_http=allow_unprotected_http,
            max_body_bytes=int(max_body_mb * 1024 * 1024),
        )
        # Handlers first: a stop asked for while the server starts is honoured once it is up.
        stopping = stop_requested()
        server = ServingStack(options)
        server.start()
        for model in server.served:
            typer.echo(f"model {model.name:24} {model.backend:12} served {model.served_by}")
        typer.echo(
            f"HTTP    {server.http_url}\ngRPC    {server.grpc_url}\nmetrics {server.metrics_url}"
        )
        typer.echo(f"HTTP is guarded by: {server.http_protection}")
        typer.echo(f"log     {server.log_path}\nready; Ctrl-C or SIGTERM stops it", err=False)
        while not stopping.wait(0.5):
            pass  # the watchdog keeps the server up; a signal ends this
        typer.echo("stopping: waiting for in-flight requests …", err=True)
        server.stop()


@app.command("front")
def front_command(
    upstream: Annotated[str, typer.Option(help="host:port of the Triton HTTP endpoint to guard.")],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Public HTTP port.")] = 8080,
    max_body_mb: Annotated[
        float, typer.Option(min=1, help="Largest HTTP request body let through.")
    ] = 32,
    workdir: Annotated[Path | None, typer.Option(help="Where nginx.conf and logs go.")] = None,
) -> None:
    """Run only the hardened HTTP front, before any Triton (e.g. NVIDIA's container)."""
    from maas.serve.front import FrontOptions, HttpFront

    with user_errors():
        upstream_host, _, upstream_port = upstream.rpartition(":")
        if not upstream_host or not upstream_port.isdigit():
            raise typer.BadParameter(f"--upstream must be host:port, got {upstream!r}")
        options = FrontOptions(
            host=host,
            port=port,
            upstream_port=int(upstream_port),
            upstream_host=upstream_host,
            max_body_bytes=int(max_body_mb * 1024 * 1024),
        )
        with tempfile.TemporaryDirectory(prefix="maas-front-") as scratch:
            front = HttpFront(options, workdir or Path(scratch))
            stopping = stop_requested()
            front.start()
            typer.echo(f"front   {host}:{port} → {upstream}\nconfig  {front.config_path}")
            while not stopping.wait(0.5):
                if front.returncode is not None:
                    raise ServerError(f"nginx exited:\n{front.log_tail()}")
            front.stop()


@app.command("infer")
def infer_command(
    model: Annotated[str, typer.Argument(help="Served model, e.g. digits_cnn, resnet50, minilm.")],
    inputs: Annotated[list[str], typer.Argument(help="Image files (JPEG/PNG) or texts.")],
    url: UrlOption = None,
    protocol: ProtocolOption = "http",
    top_k: Annotated[int, typer.Option(min=1, help="How many labels per input.")] = 5,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 30.0,
) -> None:
    """Classify images, or embed or classify texts, through the server."""
    from maas.clients import input_kind
    from maas.clients.routing import require_raw_kind

    with user_errors():
        checked = check_protocol(protocol)
        kind = require_raw_kind(model, input_kind(model, url, checked, timeout))
        if kind == "image":
            lines = infer_images(model, inputs, url, checked, top_k, timeout)
        else:
            lines = infer_texts(model, inputs, url, checked, top_k, timeout)
        for line in lines:
            typer.echo(line)


def ranked_labels(labels: list[Classification]) -> str:
    """Labels with scores, best first."""
    return ", ".join(f"{item.label} ({item.score:.4f})" for item in labels)


def infer_images(
    model: str, paths: list[str], url: str | None, protocol: Protocol, top_k: int, timeout: float
) -> list[str]:
    """One line per image file: its top-k labels."""
    from maas.clients import ImageClassifier

    for path in paths:
        if not Path(path).is_file():
            raise typer.BadParameter(f"{path} is not a file")
    with ImageClassifier(model, url=url, protocol=protocol, timeout_s=timeout) as classifier:
        results = classifier.classify(paths, top_k=top_k)
    return [f"{path}: {ranked_labels(labels)}" for path, labels in zip(paths, results, strict=True)]


def infer_texts(
    model: str, texts: list[str], url: str | None, protocol: Protocol, top_k: int, timeout: float
) -> list[str]:
    """Embeddings (with pairwise cosine similarities) or top-k labels, one line per text."""
    from maas.clients import TextClassifier, TextEmbedder
    from maas.clients.routing import output_names

    if "embeddings" not in output_names(model, url, protocol, timeout):
        with TextClassifier(model, url=url, protocol=protocol, timeout_s=timeout) as classifier:
            results = classifier.classify(texts, top_k=top_k)
        return [
            f"{text!r}: {ranked_labels(labels)}"
            for text, labels in zip(texts, results, strict=True)
        ]
    with TextEmbedder(model, url=url, protocol=protocol, timeout_s=timeout) as embedder:
        vectors = embedder.embed(texts)
    lines = [
        f"{text!r}: {vector.size} dims [{', '.join(f'{v:.4f}' for v in vector[:4])}, …]"
        for text, vector in zip(texts, vectors, strict=True)
    ]
    for i, j in itertools.combinations(range(len(texts)), 2):
        lines.append(f"cosine({i}, {j}) = {float(vectors[i] @ vectors[j]):.4f}")
    return lines


@app.command("bench")
def bench_command(
    model: Annotated[
        str, typer.Argument(help="Served model: resnet50_image (JPEG bytes), minilm_text, …")
    ],
    url: UrlOption = None,
    protocol: Annotated[str, typer.Option(help="http, grpc, or naive (the baseline service).")] = (
        "http"
    ),
    users: Annotated[
        str, typer.Option(help="Concurrent users; a list (1,2,4,8) sweeps them. With --rate: pool.")
    ] = "4",
    rate: Annotated[
        str, typer.Option(help="Offered requests/s (open loop); a list sweeps them.")
    ] = "",
    arrival: Annotated[str, typer.Option(help="Open-loop spacing: constant or poisson.")] = (
        "constant"
    ),
    duration: Annotated[float, typer.Option(min=0.5, help="Measured seconds per level.")] = 10.0,
    warmup: Annotated[float, typer.Option(min=0.0, help="Unmeasured seconds per level.")] = 3.0,
    shm: Annotated[bool, typer.Option(help="Send inputs through system shared memory.")] = False,
    stats_url: Annotated[
        str, typer.Option(help="Triton HTTP host:port for statistics [default: from --url].")
    ] = "",
    limit_seconds: Annotated[
        float, typer.Option(min=0.0, help="Seconds timing the in-process limit (0: skip).")
    ] = 5.0,
    out: Annotated[
        Path | None, typer.Option(help="Report folder [default: bench-results/<model>-<protocol>].")
    ] = None,
    image: Annotated[
        Path | None, typer.Option(help="Image file to send [default: a bundled photograph].")
    ] = None,
    repository: RepositoryOption = DEFAULT_REPOSITORY,
) -> None:
    """Headless Locust load test of a running server, with Triton's breakdown and a report."""
    from maas.base.errors import BenchError
    from maas.benchmarks.bench import BenchOptions, describe, parse_list, run_bench
    from maas.benchmarks.fingerprint import fingerprint
    from maas.benchmarks.load_report import limit_line, write_bench_report

    with user_errors():
        options = BenchOptions(
            model=model,
            protocol=protocol,
            url=url or "",
            users=tuple(int(u) for u in parse_list(users, int, "--users")),
            rates=parse_list(rate, float, "--rate"),
            arrival=arrival,
            duration_s=duration,
            warmup_s=warmup,
            shm=shm,
            stats_url=stats_url,
            repository=repository,
            image=image,
            limit_seconds=limit_seconds,
        )
        levels = options.levels()
        run = run_bench(options)
        for level in run.levels:
            typer.echo(f"{run.title} {level.summary()}")
        if run.limit is not None:
            typer.echo(limit_line(run).replace("**", ""))
        folder = out or Path("bench-results") / run.slug
        print_ = fingerprint(options.resolved_stats_url())
        path = write_bench_report([run], folder, print_, describe(options, levels))
        typer.echo(f"report  {path}")
        failed = sum(level.failures for level in run.levels)
        if failed:
            raise BenchError(f"{failed} requests failed; see {path}")


@app.command("bench-suite")
def bench_suite_command(
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path(
        "benchmarks/results/reference"
    ),
    duration: Annotated[float, typer.Option(min=0.5, help="Measured seconds per level.")] = 8.0,
    warmup: Annotated[float, typer.Option(min=0.0, help="Unmeasured seconds per level.")] = 3.0,
    repository: RepositoryOption = DEFAULT_REPOSITORY,
) -> None:
    """Reference run: every benchmark goal side by side (starts its own server; ~10 min)."""
    import sys

    from maas.benchmarks.suite import SuiteOptions, goals, run_suite, write_suite_report

    setup_logging()
    with user_errors():
        options = SuiteOptions(repository=repository, out=out, duration_s=duration, warmup_s=warmup)
        result, print_ = run_suite(options)
        command = "maas " + " ".join(sys.argv[1:])
        path = write_suite_report(result, print_, options, command)
        for goal in goals(result):
            typer.echo(f"{'met   ' if goal.met else 'MISSED'} {goal.name}: {goal.measured}")
        typer.echo(f"report  {path}")


@app.command("bench-front")
def bench_front_command(
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("benchmarks/results/front"),
    rounds: Annotated[int, typer.Option(min=1, help="Alternating rounds per case.")] = 5,
    duration: Annotated[float, typer.Option(min=0.5, help="Measured seconds per run.")] = 10.0,
    warmup: Annotated[float, typer.Option(min=0.0, help="Unmeasured seconds per run.")] = 2.0,
    repository: RepositoryOption = DEFAULT_REPOSITORY,
) -> None:
    """What the HTTP front costs: the same load through nginx and straight to Triton."""
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
                f"{result.case.model} {result.case.users} user(s): throughput front/direct "
                f"{result.throughput_ratio:.3f}, p50 added {result.p50_added_ms:+.3f} ms; "
                f"{result.goal}: {'met' if result.goal_met else 'MISSED'}"
            )
        typer.echo(f"report  {write_front_report(results, options, print_)}")


@app.command("soak")
def soak_command(
    duration: Annotated[float, typer.Option(min=1, help="Seconds of traffic.")] = 600.0,
    users: Annotated[int, typer.Option(min=1, help="Concurrent workers.")] = 4,
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds per sample.")] = 10.0,
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("benchmarks/results/soak"),
    http_url: Annotated[str, typer.Option(help="Soak this server's HTTP endpoint.")] = "",
    grpc_url: Annotated[str, typer.Option(help="…and its gRPC endpoint (both or neither).")] = "",
    repository: RepositoryOption = DEFAULT_REPOSITORY,
) -> None:
    """Mixed traffic to every model over both protocols; report failures, p99 drift and memory.

    Without URLs it starts its own `maas serve`. Exits 1 if a request failed or memory grew.
    """
    import sys

    from maas.benchmarks.soak import SoakOptions, passed, run_soak, verdict, write_soak_report

    setup_logging()
    with user_errors():
        if bool(http_url) != bool(grpc_url):
            raise typer.BadParameter("give both --http-url and --grpc-url, or neither")
        options = SoakOptions(repository, duration, users, interval, out, http_url, grpc_url)
        result = run_soak(options)
        path = write_soak_report(result, "maas " + " ".join(sys.argv[1:]))
        for name, measured, ok in verdict(result):
            typer.echo(f"{'ok    ' if ok else 'FAILED'} {name}: {measured}")
        typer.echo(f"report  {path}")
        if not passed(result):
            raise typer.Exit(1)


@app.command("bench-padding")
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
    from maas.benchmarks.text_padding import render_table, run_padding_benchmark, write_report
    from maas.cli.doctor import cpu_check

    setup_logging()
    with user_errors():
        results = run_padding_benchmark(repository, model, concurrency, copies)
        typer.echo(render_table(results))
        header = (
            f"# Padding waste: {model}, {results[0].requests} single-text requests, "
            f"{concurrency} concurrent clients, gRPC\n\nMachine: {cpu_check().detail}; "
            f"{os.cpu_count()} cores; `maas bench-padding --concurrency {concurrency} "
            f"--copies {copies}`; all rows from one run."
        )
        typer.echo(f"report  {write_report(results, output, header)}")


@app.command("bench-targets")
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
    from maas.benchmarks.targets import bench_targets, render_table, write_report
    from maas.cli.doctor import cpu_check
    from maas.export import model_names

    setup_logging()
    with user_errors():
        names = models or model_names()
        rows = bench_targets(names, seconds)
        typer.echo(render_table(rows))
        header = (
            "# Export targets, in-process throughput (samples/s)\n\n"
            f"Machine: {cpu_check().detail}; {os.cpu_count()} cores; "
            f"`maas bench-targets --seconds {seconds}`; medians of per-call times, all rows from "
            "one run, inputs are each model's real evaluation data."
        )
        typer.echo(f"report  {write_report(rows, output, header)}")


@app.command("doctor")
def doctor_command() -> None:
    """Report what this machine can serve and run."""
    from maas.cli.doctor import run_checks

    for check in run_checks():
        mark = (
            typer.style("ok  ", fg=typer.colors.GREEN)
            if check.ok
            else typer.style("--  ", fg=typer.colors.YELLOW)
        )
        typer.echo(f"{mark}{check.name:22} {check.detail}")


@app.command("demo")
def demo_command(
    repository: RepositoryOption = DEFAULT_REPOSITORY,
    http_port: Annotated[int, typer.Option(help="HTTP port of the demo server.")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="gRPC port of the demo server.")] = 8001,
    metrics_port: Annotated[int, typer.Option(help="Metrics port of the demo server.")] = 8002,
    bench_seconds: Annotated[float, typer.Option(help="Length of the closing benchmark.")] = 5.0,
    reexport: Annotated[bool, typer.Option(help="Export even if artifacts exist.")] = False,
) -> None:
    """The whole path: export, serve, classify real images over HTTP and gRPC, benchmark."""
    from maas.cli.demo import run_demo

    setup_logging()
    with user_errors(), tempfile.TemporaryDirectory(prefix="maas-demo-") as scratch:
        run_demo(
            repository,
            (http_port, grpc_port, metrics_port),
            bench_seconds,
            reexport,
            Path(scratch),
            typer.echo,
        )


if __name__ == "__main__":
    app()
