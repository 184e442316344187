"""Monitoring without a server: parsing metrics pages, `maas top`'s rows, the dashboard, files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from maas.base.errors import MonitorError, MonitorUnavailableError
from maas.monitor import rules
from maas.monitor.dashboard import PANELS, dashboard
from maas.monitor.files import MonitoringFiles
from maas.monitor.prometheus import PROMETHEUS_ENV, PrometheusTools, StackUrls, scrape_job
from maas.monitor.rules import RuleOptions
from maas.monitor.scrape import Snapshot, parse_line
from maas.monitor.signals import GatewayBackend
from maas.monitor.top import model_rows, render, stack_row
from maas.serve.audit import Usage
from maas.serve.stack_metrics import Restarts, StackCollector
from maas.serve.stubs import Stub

ROOT = Path(__file__).resolve().parents[2]


def test_parse_line_reads_labels_with_escapes_and_skips_comments() -> None:
    assert parse_line('x{a="q\\"z",b="1,2",c="back\\\\slash"} 3.5 1700000000') == (
        "x",
        {"a": 'q"z', "b": "1,2", "c": "back\\slash"},
        3.5,
    )
    assert parse_line("up 1") == ("up", {}, 1.0)
    assert parse_line("# TYPE up gauge") is None
    assert parse_line("") is None
    nan = parse_line('haproxy_backend_downtime_seconds_total{proxy="p"} NaN')
    assert nan is not None and nan[2] != nan[2]


def test_snapshot_keeps_counter_names_as_the_page_writes_them() -> None:
    page = "# TYPE nv_inference_request_success counter\n" + triton(7)
    snapshot = Snapshot.parse(page, at=0)
    assert snapshot.total("nv_inference_request_success", model="m") == 7
    assert "nv_inference_request_success_total" not in snapshot.names()


def triton(success: float, model: str = "m", queue_us: float = 0, p99_us: float = 0) -> str:
    labels = f'model="{model}",version="1"'
    return (
        f"nv_inference_request_success{{{labels}}} {success}\n"
        f'nv_inference_request_failure{{{labels},reason="BACKEND"}} 0\n'
        f"nv_inference_count{{{labels}}} {success * 4}\n"
        f"nv_inference_exec_count{{{labels}}} {success}\n"
        f"nv_inference_queue_duration_us{{{labels}}} {queue_us}\n"
        f"nv_inference_compute_infer_duration_us{{{labels}}} {success * 1000}\n"
        f'nv_inference_request_summary_us{{{labels},quantile="0.99"}} {p99_us}\n'
    )


def gateway(http_refused: int, grpc_refused: int, timed_out: int, in_flight: int) -> str:
    lines = []
    for protocol in ("http", "grpc"):
        refused, model = f"{protocol}_refused_m", f"{protocol}_model_m"
        lines += [
            f'haproxy_backend_http_requests_total{{proxy="{refused}"}} '
            f"{http_refused + 5 if protocol == 'http' else grpc_refused}",
            f'haproxy_backend_http_responses_total{{proxy="{refused}",code="5xx"}} '
            f"{http_refused if protocol == 'http' else 0}",
            f'haproxy_backend_http_requests_total{{proxy="{model}"}} 100',
            f'haproxy_backend_connection_errors_total{{proxy="{model}"}} '
            f"{timed_out if protocol == 'http' else 0}",
            f'haproxy_backend_current_sessions{{proxy="{model}"}} {in_flight}',
            f'haproxy_backend_current_queue{{proxy="{model}"}} 1',
        ]
    lines.append('haproxy_backend_http_requests_total{proxy="http_triton"} 999')
    return "\n".join(lines) + "\n"


def test_model_rows_compute_rates_and_sheds_over_the_interval() -> None:
    before = Snapshot.parse(triton(100, queue_us=0) + gateway(10, 0, 0, 0), at=10.0)
    after = Snapshot.parse(
        triton(300, queue_us=400_000, p99_us=25_000) + gateway(50, 20, 10, 2), at=12.0
    )
    (row,) = model_rows(before, after)
    assert row.model == "m"
    assert row.requests_per_s == 100  # 200 answered in 2 s
    assert row.queue_ms == 2.0  # 400 ms of queue over 200 requests
    assert row.compute_ms == 1.0 and row.batch_size == 4.0 and row.p99_ms == 25.0
    # 40 more HTTP 503s, 20 gRPC refusals, 10 timed out in the queue; HTTP 4xx not counted
    assert row.shed_per_s == 35.0
    assert (row.in_flight, row.waiting) == (4, 2)
    assert row.errors_per_s == 0


def test_model_rows_count_from_zero_when_a_restart_reset_the_counters() -> None:
    before = Snapshot.parse(triton(500), at=0.0)
    after = Snapshot.parse(triton(20), at=1.0)
    (row,) = model_rows(before, after)
    assert row.requests_per_s == 20


def test_render_hides_idle_models_and_shows_the_stacks_health() -> None:
    before = Snapshot.parse(triton(1, "busy") + triton(1, "idle"), at=0.0)
    after_page = (
        triton(11, "busy")
        + triton(1, "idle")
        + (
            'maas_process_resident_bytes{process="tritonserver",model=""} 104857600\n'
            "maas_triton_restarts_total 1\nmaas_gateway_restarts_total 0\n"
            "maas_shm_free_bytes 1048576\n"
        )
    )
    after = Snapshot.parse(after_page, at=1.0)
    console = Console(width=200, record=True)
    console.print(render(model_rows(before, after), stack_row(after), "t", show_idle=False))
    shown = console.export_text()
    assert "│ busy " in shown and "│ idle " not in shown and "1 idle model(s) hidden" in shown
    assert "tritonserver 100" in shown and "restarts 1" in shown


def test_gateway_backend_names_are_read_back() -> None:
    assert GatewayBackend.parse("grpc_refused_tiny_bert") == GatewayBackend(
        "grpc", True, "tiny_bert"
    )
    assert GatewayBackend.parse("http_model_m") == GatewayBackend("http", False, "m")
    assert GatewayBackend.parse("http_triton") is None


def test_rule_options_refuse_budgets_that_make_no_sense() -> None:
    with pytest.raises(MonitorError, match="shed_ratio must be between 0 and 1"):
        RuleOptions(shed_ratio=1.5)
    with pytest.raises(MonitorError, match="p99_budget_ms must be positive"):
        RuleOptions(p99_budget_ms=0)


def test_alerts_fire_at_once_when_hold_is_off() -> None:
    held = rules.rule_groups(RuleOptions())["groups"][1]["rules"]
    at_once = rules.rule_groups(RuleOptions(hold=False))["groups"][1]["rules"]
    assert any("for" in rule for rule in held)
    assert not any("for" in rule for rule in at_once)
    p99 = next(rule for rule in rules.alerts(RuleOptions(p99_budget_ms=250)) if "P99" in rule.name)
    assert p99.expr.endswith("> 0.25")


def test_dashboard_panels_are_unique_placed_and_read_recorded_or_raw_metrics() -> None:
    board = dashboard()
    panels = board["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels) == len(PANELS)
    cells = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
        assert panel["targets"] and all(target["expr"] for target in panel["targets"])
        assert panel["datasource"]["uid"] == "${datasource}"
    names = {variable["name"] for variable in board["templating"]["list"]}
    assert names == {"datasource", "model"}
    recorded = {rule["record"] for rule in rules.recording_rules()}
    used = " ".join(target["expr"] for panel in panels for target in panel["targets"])
    assert {rules.REQUESTS, rules.P99, rules.QUEUE_PER_REQUEST, rules.SHED_RATIO} <= recorded
    assert all(name in used for name in (rules.BATCH_SIZE, rules.IN_FLIGHT, rules.PADDING_WASTE))


def test_committed_monitoring_files_are_what_maas_monitor_writes() -> None:
    for relative, text in MonitoringFiles().contents().items():
        committed = ROOT / "deploy/monitoring" / relative
        assert committed.read_text() == text, f"{committed} is stale: maas monitor --write"
    json.loads((ROOT / "deploy/monitoring/grafana/dashboards/maas.json").read_text())
    provider = yaml.safe_load(
        (ROOT / "deploy/monitoring/grafana/provisioning/dashboards/maas.yml").read_text()
    )
    assert provider["providers"][0]["type"] == "file"


def test_scrape_job_splits_the_url_and_refuses_one_without_a_port() -> None:
    job = scrape_job("maas-triton", "https://triton.example:8002/metrics")
    assert job["scheme"] == "https" and job["static_configs"] == [
        {"targets": ["triton.example:8002"]}
    ]
    with pytest.raises(MonitorError, match="must be http"):
        scrape_job("maas-triton", "triton:8002")
    urls = StackUrls.on_host("10.0.0.5")
    assert urls.gateway == "http://10.0.0.5:8003/metrics"


def test_locating_prometheus_names_the_fix_when_the_binary_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PROMETHEUS_ENV, "/nonexistent/prometheus")
    with pytest.raises(MonitorUnavailableError, match="apt-get install prometheus"):
        PrometheusTools.locate()


class OwnProcess:
    """A stack whose only process is this test's, with one stub of model m."""

    restart_counts = Restarts(triton=2)

    def process_ids(self) -> dict[str, int]:
        return {"tritonserver": os.getpid()}

    def current_stubs(self) -> list[Stub]:
        return [Stub(os.getpid(), "m", "triton_python_backend_shm_region_none")]

    def usage_now(self) -> dict[tuple[str, str, str], Usage]:
        return {("team-a", "m", "grpc"): Usage(requests=3, failures=1, bytes_in=300)}


def test_stack_collector_reports_restarts_memory_and_stub_reloads_from_zero() -> None:
    families = {family.name: family for family in StackCollector(OwnProcess()).collect()}
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families.values()
        for sample in family.samples
    }
    assert samples[("maas_triton_restarts_total", ())] == 2
    assert samples[("maas_stub_reloads_total", (("model", "m"),))] == 0
    assert (
        samples[("maas_process_resident_bytes", (("model", ""), ("process", "tritonserver")))] > 0
    )
    assert samples[("maas_shm_region_bytes", (("model", "m"),))] == 0
    tenant = (("model", "m"), ("protocol", "grpc"), ("tenant", "team-a"))
    assert samples[("maas_tenant_requests_total", tenant)] == 3
    assert samples[("maas_tenant_bytes_in_total", tenant)] == 300
