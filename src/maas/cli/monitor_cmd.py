"""`maas monitor` (Prometheus with the stack's rules) and `maas top` (a live terminal view)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from maas.base.errors import MonitorError
from maas.monitor.files import DASHBOARDS, MonitoringFiles
from maas.monitor.prometheus import PrometheusOptions, PrometheusServer, PrometheusTools, StackUrls
from maas.monitor.rules import RuleOptions
from maas.monitor.scrape import Snapshot, scrape
from maas.monitor.top import model_rows, render, stack_row

from .common import HostOption, stop_requested, user_errors

StackHostOption = Annotated[
    str,
    typer.Option(
        "--stack", help="Host of a stack on maas serve's default ports (8002, 8003, 8004)."
    ),
]
TritonMetricsOption = Annotated[
    str | None, typer.Option(help="Triton's metrics URL [default: http://STACK:8002/metrics].")
]
GatewayMetricsUrlOption = Annotated[
    str | None,
    typer.Option(help="The gateway's metrics URL [default: http://STACK:8003/metrics]."),
]
StackMetricsUrlOption = Annotated[
    str | None,
    typer.Option(help="The stack's own metrics URL [default: http://STACK:8004/metrics]."),
]


def stack_urls(stack: str, triton: str | None, gateway: str | None, own: str | None) -> StackUrls:
    """The three endpoints: the defaults on the stack's host, each overridable."""
    default = StackUrls.on_host(stack)
    return StackUrls(triton or default.triton, gateway or default.gateway, own or default.stack)


def monitor_command(
    stack: StackHostOption = "127.0.0.1",
    triton_metrics: TritonMetricsOption = None,
    gateway_metrics: GatewayMetricsUrlOption = None,
    stack_metrics: StackMetricsUrlOption = None,
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Prometheus's port.")] = 9090,
    scrape_interval: Annotated[
        float, typer.Option(min=0.5, help="Seconds between scrapes and rule evaluations.")
    ] = 5.0,
    p99_budget_ms: Annotated[
        float, typer.Option(help="Alert when a model's p99 stays above this.")
    ] = 1000.0,
    queue_budget_ms: Annotated[
        float, typer.Option(help="Alert when mean queue time per request stays above this.")
    ] = 100.0,
    data: Annotated[
        Path | None, typer.Option(help="Folder for the config and Prometheus's data.")
    ] = None,
    retention: Annotated[str, typer.Option(help="How long Prometheus keeps data.")] = "15d",
    prometheus: Annotated[
        Path | None,
        typer.Option(help="The prometheus binary [default: $MAAS_PROMETHEUS, else PATH]."),
    ] = None,
    write: Annotated[
        Path | None,
        typer.Option(help="Only write prometheus.yml, the rules and the dashboard there."),
    ] = None,
) -> None:
    """Run Prometheus against a running stack, with maas's alert rules and dashboard."""
    with user_errors():
        files = MonitoringFiles(
            urls=stack_urls(stack, triton_metrics, gateway_metrics, stack_metrics),
            scrape_interval_s=scrape_interval,
            rules=RuleOptions(p99_budget_ms=p99_budget_ms, queue_budget_ms=queue_budget_ms),
            prometheus_url=f"http://{host}:{port}",
        )
        if write is not None:
            for path in files.write(write):
                typer.echo(f"wrote {path}")
            return
        tools = PrometheusTools.locate(prometheus)
        with tempfile.TemporaryDirectory(prefix="maas-monitor-") as scratch:
            folder = data or Path(scratch)
            files.write(folder)
            run_prometheus(PrometheusOptions(folder, host, port, retention), tools, folder)


def run_prometheus(options: PrometheusOptions, tools: PrometheusTools, folder: Path) -> None:
    """Start Prometheus, say where everything is, and keep it up until Ctrl-C or SIGTERM."""
    stopping = stop_requested()
    with PrometheusServer(options, tools) as server:
        typer.echo(
            f"Prometheus {options.url} (alerts: {options.url}/alerts)\n"
            f"config     {folder / 'prometheus.yml'}\n"
            f"Grafana    import {folder / DASHBOARDS / 'maas.json'} "
            f"(provisioning files in {folder / 'grafana/provisioning'})\n"
            "ready; Ctrl-C or SIGTERM stops it"
        )
        while not stopping.wait(0.5):
            if server.returncode is not None:
                raise MonitorError(f"Prometheus exited:\n{server.log_tail()}")


def top_command(
    stack: StackHostOption = "127.0.0.1",
    triton_metrics: TritonMetricsOption = None,
    gateway_metrics: GatewayMetricsUrlOption = None,
    stack_metrics: StackMetricsUrlOption = None,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between frames.")] = 1.0,
    once: Annotated[
        bool, typer.Option("--once", help="Print one frame (over one interval) and exit.")
    ] = False,
    show_all: Annotated[bool, typer.Option("--all", help="Show idle models too.")] = False,
) -> None:
    """A live view of a running stack: per model rate, latency, queue, batch, shedding."""
    urls = stack_urls(stack, triton_metrics, gateway_metrics, stack_metrics)
    with user_errors():
        if once:
            before = read(urls)
            time.sleep(interval)
            Console().print(frame(before, read(urls), urls, show_all))
            return
        run_top(urls, interval, show_all)


def read(urls: StackUrls) -> Snapshot:
    """One snapshot of the stack; Triton's endpoint must answer, the others may be missing."""
    snapshot = scrape(urls.triton)
    for url in (urls.gateway, urls.stack):
        try:
            snapshot = snapshot.merged(scrape(url))
        except MonitorError:
            continue  # e.g. Triton alone, or an older stack without its own endpoint
    return snapshot


def frame(before: Snapshot, after: Snapshot, urls: StackUrls, show_all: bool) -> Table:
    """One frame of the view."""
    title = f"maas top · {urls.triton} · {time.strftime('%H:%M:%S')}"
    return render(model_rows(before, after), stack_row(after), title, show_all)


def run_top(urls: StackUrls, interval: float, show_all: bool) -> None:
    """Refresh every interval until Ctrl-C; a stack that stops answering is shown, not fatal."""
    stopping = stop_requested()
    before = read(urls)
    with Live(Text("reading the stack's metrics …"), auto_refresh=False) as live:
        while not stopping.wait(interval):
            try:
                after = read(urls)
            except MonitorError as failure:
                live.update(Text(f"{failure}; retrying", style="bold red"), refresh=True)
                continue
            live.update(frame(before, after, urls, show_all), refresh=True)
            before = after
