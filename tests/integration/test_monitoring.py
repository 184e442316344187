"""Monitoring a live stack: a real `maas serve`, a real Prometheus with maas's rules, real load.

digits_cnn is served with an admission limit of one request in flight and one waiting, and
flooded over both protocols until the gateway sheds; minilm_text gets real sentences (padding).
Prometheus must then hold the expected series, fire the shed-ratio alert through its HTTP API,
and accept every dashboard query with data behind it; `maas top --once` must show the flood.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from maas.base.errors import MaasError, MonitorUnavailableError, ServerOverloadedError
from maas.base.sentences import SENTENCES
from maas.base.triton.endpoints import free_port
from maas.benchmarks.peers_bench import subset_repository
from maas.clients import NO_RETRIES, ModelClient, Protocol, TextEmbedder
from maas.monitor import rules
from maas.monitor.dashboard import PANELS
from maas.monitor.files import MonitoringFiles
from maas.monitor.prometheus import (
    PrometheusOptions,
    PrometheusServer,
    PrometheusTools,
    StackUrls,
    api_get,
)
from maas.monitor.rules import RuleOptions
from maas.monitor.scrape import scrape
from tests.conftest import Exported, RunningServer, start_maas_serve, stop_maas_serve

FLOODED = "digits_cnn"
SCRAPE_S = 1.0


@dataclass
class Flood:
    """Callers hammering one model until stopped, counting what came back."""

    pixels: np.ndarray
    stop: threading.Event = field(default_factory=threading.Event)
    answered: int = 0
    shed: int = 0
    other: list[str] = field(default_factory=list)

    def call(self, url: str, protocol: Protocol) -> None:
        with ModelClient(FLOODED, url=url, protocol=protocol, retry=NO_RETRIES) as client:
            while not self.stop.is_set():
                try:
                    client.infer({"pixels": self.pixels})
                    self.answered += 1
                except ServerOverloadedError:
                    self.shed += 1
                except MaasError as failure:
                    self.other.append(str(failure))


def urls_of(serve: RunningServer) -> StackUrls:
    return StackUrls(
        f"http://127.0.0.1:{serve.metrics_port}/metrics",
        f"http://127.0.0.1:{serve.gateway_metrics_port}/metrics",
        f"http://127.0.0.1:{serve.stack_metrics_port}/metrics",
    )


@pytest.fixture(scope="module")
def stack(exported: Exported, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("monitored")
    repo = subset_repository(exported.repository, "minilm_text", folder / "repo")
    shutil.copytree(exported.repository.model_dir(FLOODED), repo / FLOODED)
    serve = start_maas_serve(repo, folder, extra_args=["--limit", f"{FLOODED}=1:1:20"])
    yield serve
    assert stop_maas_serve(serve) == 0


@pytest.fixture(scope="module")
def prometheus(
    stack: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    try:
        tools = PrometheusTools.locate()
    except MonitorUnavailableError as missing:
        pytest.skip(str(missing))
    folder = tmp_path_factory.mktemp("prometheus")
    options = PrometheusOptions(folder, port=free_port())
    # hold=False: alerts fire as soon as their condition holds, so a test need not wait minutes.
    MonitoringFiles(urls_of(stack), SCRAPE_S, RuleOptions(hold=False), options.url).write(folder)
    with PrometheusServer(options, tools) as server:
        # Counters must be seen before the traffic, or their first sample already holds it all.
        deadline = time.monotonic() + 30
        while len(api_get(options.url, "/api/v1/query", query="up")["result"]) < 3:
            assert time.monotonic() < deadline, "Prometheus never scraped the three endpoints"
            time.sleep(SCRAPE_S / 4)
        yield server


@pytest.fixture(scope="module")
def flood(
    exported: Exported, stack: RunningServer, prometheus: PrometheusServer
) -> Iterator[Flood]:
    """Both protocols flooded; minilm_text called with real sentences meanwhile."""
    flood = Flood(exported.results[FLOODED].built.eval_inputs["pixels"][:1])
    callers = [
        threading.Thread(target=flood.call, args=(stack.url(protocol), protocol))
        for protocol in ("http", "grpc", "http", "grpc", "http", "grpc")
    ]
    for caller in callers:
        caller.start()
    with TextEmbedder("minilm_text", url=stack.http_url) as embedder:
        for start in range(0, len(SENTENCES), 4):
            embedder.embed(SENTENCES[start : start + 4])
    time.sleep(6 * SCRAPE_S)
    yield flood
    flood.stop.set()
    for caller in callers:
        caller.join()


def query(prometheus: PrometheusServer, expression: str) -> list[dict[str, Any]]:
    """An instant query's series; retried for a few scrapes while it has none."""
    deadline = time.monotonic() + 10 * SCRAPE_S
    while True:
        data = api_get(prometheus.options.url, "/api/v1/query", query=expression)
        if data["result"] or time.monotonic() > deadline:
            return list(data["result"])
        time.sleep(SCRAPE_S / 2)


def health(prometheus: PrometheusServer) -> str:
    """Targets and rules in trouble, for assertion messages."""
    url = prometheus.options.url
    targets = api_get(url, "/api/v1/targets")["activeTargets"]
    groups = api_get(url, "/api/v1/rules")["groups"]
    return repr(
        [
            (t["labels"]["job"], t["health"], t["lastError"], t["lastScrapeDuration"])
            for t in targets
        ]
        + [(g["name"], g["evaluationTime"]) for g in groups]
        + [(r["name"], r["lastError"]) for g in groups for r in g["rules"] if r["health"] != "ok"]
    )


def value_of(prometheus: PrometheusServer, expression: str) -> float:
    """The value of an instant query that must have exactly one series."""
    results = query(prometheus, expression)
    assert len(results) == 1, f"{expression}: {results}; {health(prometheus)}"
    return float(results[0]["value"][1])


def wait_for_alert(prometheus: PrometheusServer, name: str, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for alert in api_get(prometheus.options.url, "/api/v1/alerts")["alerts"]:
            if alert["labels"]["alertname"] == name and alert["state"] == "firing":
                return dict(alert)
        time.sleep(SCRAPE_S)
    raise AssertionError(f"{name} did not fire within {seconds} s")


def test_shed_ratio_alert_fires_for_the_flooded_model(
    prometheus: PrometheusServer, flood: Flood
) -> None:
    alert = wait_for_alert(prometheus, "MaasRequestsShed", 30)
    assert alert["labels"]["model"] == FLOODED
    assert float(alert["value"]) > 0.05
    assert f"{FLOODED}: the gateway sheds" in alert["annotations"]["summary"]
    assert flood.shed > 0 and flood.answered > 0
    assert not flood.other, set(flood.other)


def test_prometheus_holds_the_stacks_series(prometheus: PrometheusServer, flood: Flood) -> None:
    up = {r["metric"]["job"]: float(r["value"][1]) for r in query(prometheus, "up")}
    assert up == {"maas-triton": 1.0, "maas-gateway": 1.0, "maas-stack": 1.0}
    model = f'{{model="{FLOODED}"}}'
    assert value_of(prometheus, f"{rules.REQUESTS}{model}") > 0
    assert 0 < value_of(prometheus, f"{rules.SHED_RATIO}{model}") < 1
    assert value_of(prometheus, f"{rules.BATCH_SIZE}{model}") >= 1
    p99 = f'nv_inference_request_summary_us{{model="{FLOODED}",quantile="0.99"}}'
    assert value_of(prometheus, p99) > 0, "Triton runs with latency summaries"
    for protocol in ("http", "grpc"):
        refused = f'{rules.REFUSED}{{model="{FLOODED}",protocol="{protocol}"}}'
        assert value_of(prometheus, refused) > 0, f"refusals over {protocol} are counted"
    assert 0 <= value_of(prometheus, f'{rules.PADDING_WASTE}{{model="minilm"}}') < 1
    resident = 'maas_process_resident_bytes{process="tritonserver"}'
    assert value_of(prometheus, resident) > 10 * 2**20
    assert value_of(prometheus, f'maas_stub_reloads_total{{model="{FLOODED}"}}') == 0


def metric_names(expression: str) -> set[str]:
    """The metric (and recording rule) names a PromQL expression reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)  # strings out
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)  # selectors and ranges out
    text = re.sub(r"\b(by|without)\s*\([^)]*\)", " ", text)  # grouping labels out
    words = re.findall(r"(?<![\w:])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()", text)
    keywords = {"by", "without", "offset", "and", "or", "unless", "bool", "on", "ignoring"}
    return {word for word in words if word not in keywords and not word[0].isdigit()}


def test_every_dashboard_query_runs_on_metrics_the_stack_exports(
    stack: RunningServer, prometheus: PrometheusServer, flood: Flood
) -> None:
    urls = urls_of(stack)
    exported_names = scrape(urls.triton, urls.gateway, urls.stack).names() | {"up"}
    recorded = {rule["record"] for rule in rules.recording_rules()}
    for rule in rules.recording_rules():  # the rules read only what the stack exports
        missing = metric_names(rule["expr"]) - exported_names - recorded
        assert not missing, f"{rule['record']} reads {missing}, which the stack does not export"
    for panel in PANELS:
        for target in panel.queries:
            names = metric_names(target.expr)
            assert names, f"{panel.title}: {target.expr} names no metric"
            assert names <= exported_names | recorded, f"{panel.title}: {names - exported_names}"
            expression = target.expr.replace("$model", ".*")
            found = query(prometheus, expression)
            assert found, f"{panel.title}: no data for {expression}; {health(prometheus)}"


def test_maas_top_once_shows_the_flood(stack: RunningServer, flood: Flood) -> None:
    urls = urls_of(stack)
    command = [
        sys.executable, "-m", "maas.cli", "top", "--once", "--interval", "1",
        "--triton-metrics", urls.triton, "--gateway-metrics", urls.gateway,
        "--stack-metrics", urls.stack,
    ]  # fmt: skip
    shown = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "160"},
    ).stdout
    (row,) = [line for line in shown.splitlines() if f" {FLOODED} " in line]
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    header = next(line for line in shown.splitlines() if "req/s" in line)
    columns = [cell.strip() for cell in header.strip("┃ ").split("┃")]
    values = dict(zip(columns, cells, strict=True))
    assert float(values["req/s"]) > 0 and float(values["shed/s"]) > 0, shown
    assert float(values["batch"]) >= 1 and values["p99 ms"] != "-", shown
    assert "tritonserver" in shown and "restarts 0" in shown, shown
