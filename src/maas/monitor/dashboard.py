"""The Grafana dashboard of a maas stack, and the provisioning files that load it.

Every panel reads the recording rules (`rules.py`) or the stack's raw metrics, filtered by the
dashboard's `model` variable; the datasource is a variable too, so the JSON imports anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from . import rules as r
from . import signals as s

UID = "maas-stack"
MODEL = 'model=~"$model"'
WIDTH, HEIGHT = 12, 8  # half of Grafana's 24-column grid


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel and the legend of its series."""

    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    """A time-series panel: what it shows, in which unit."""

    title: str
    unit: str
    queries: tuple[Query, ...]
    description: str
    stacked: bool = False


PANELS = (
    Panel(
        "Requests per second", "reqps",
        (Query(f"{r.REQUESTS}{{{MODEL}}}", "{{model}}"),),
        "Requests Triton answered, per model (all versions, instances and replicas).",
    ),
    Panel(
        "Latency p50 / p99 (Triton)", "s",
        (
            Query(f"{r.P50}{{{MODEL}}}", "{{model}} p50"),
            Query(f"{r.P99}{{{MODEL}}}", "{{model}} p99"),
        ),
        "Triton's own request latency summaries (sliding window); the worst replica's.",
    ),
    Panel(
        "Queue vs compute per request", "s",
        (
            Query(f"{r.QUEUE_PER_REQUEST}{{{MODEL}}}", "{{model}} queue"),
            Query(f"{r.COMPUTE_PER_REQUEST}{{{MODEL}}}", "{{model}} compute"),
        ),
        "Mean time a request waits in Triton's queue and spends in compute (input, inference, "
        "output), weighted by requests across replicas.",
        stacked=True,
    ),
    Panel(
        "Formed batch size", "none",
        (Query(f"{r.BATCH_SIZE}{{{MODEL}}}", "{{model}}"),),
        "Rows per model execution: what dynamic batching achieves.",
    ),
    Panel(
        "Shed at the gateway", "reqps",
        (
            Query(f"{r.REFUSED}{{{MODEL}}}", "{{model}} {{protocol}}"),
            Query(f"{r.SHED_RATIO}{{{MODEL}}}", "{{model}} ratio"),
        ),
        "Requests refused at the model's admission limit (queue full or waited too long), "
        "per second, and as a fraction of arrivals.",
    ),
    Panel(
        "Failed requests", "reqps",
        (
            Query(f"{r.FAILURES}{{{MODEL}}}", "{{model}}"),
            Query(f"{r.ERROR_RATIO}{{{MODEL}}}", "{{model}} ratio"),
        ),
        "Requests Triton failed (bad input, model errors, cancellations), and their fraction.",
    ),
    Panel(
        "Padding waste (text models)", "percentunit",
        (Query(f"{r.PADDING_WASTE}{{{MODEL}}}", "{{model}}"),),
        "Share of computed token positions that were padding.",
    ),
    Panel(
        "Gateway: in flight and waiting", "short",
        (
            Query(f"{r.IN_FLIGHT}{{{MODEL}}}", "{{model}} {{protocol}} in flight"),
            Query(f"{r.WAITING}{{{MODEL}}}", "{{model}} {{protocol}} waiting"),
        ),
        "Requests the gateway has at Triton and holds in the model's bounded queue.",
    ),
    Panel(
        "Resident memory", "bytes",
        (Query(s.RESIDENT_BYTES, "{{process}} {{model}}"),),
        "Resident memory of tritonserver, the gateway and each model's Python stubs.",
    ),
    Panel(
        "Shared memory", "bytes",
        (
            Query(f"{s.SHM_REGION_BYTES}{{{MODEL}}}", "{{model}} regions"),
            Query(s.SHM_FREE_BYTES, "/dev/shm free"),
        ),
        "Python-backend regions per model, and what is left in /dev/shm.",
    ),
    Panel(
        "Restarts (last hour)", "short",
        (
            Query(f"increase({s.TRITON_RESTARTS}[1h])", "tritonserver"),
            Query(f"increase({s.GATEWAY_RESTARTS}[1h])", "gateway"),
            Query(f"increase({s.STUB_RELOADS}{{{MODEL}}}[1h])", "{{model}} stub"),
        ),
        "Processes the watchdog restarted, and models reloaded after their stub died.",
    ),
    Panel(
        "Targets up", "short",
        (Query(f'up{{job=~"{"|".join(s.JOBS.values())}"}}', "{{job}}"),),
        "1 while Prometheus can scrape the endpoint.",
    ),
)  # fmt: skip


def panel_json(panel: Panel, number: int) -> dict[str, Any]:
    """One panel as Grafana's JSON model has it, placed on a two-column grid."""
    return {
        "id": number + 1,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {
            "h": HEIGHT,
            "w": WIDTH,
            "x": (number % 2) * WIDTH,
            "y": (number // 2) * HEIGHT,
        },
        "fieldConfig": {
            "defaults": {
                "unit": panel.unit,
                "custom": {"stacking": {"mode": "normal" if panel.stacked else "none"}},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {
                "refId": chr(ord("A") + index),
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "expr": query.expr,
                "legendFormat": query.legend,
            }
            for index, query in enumerate(panel.queries)
        ],
    }


def variables() -> list[dict[str, Any]]:
    """The datasource and model variables."""
    return [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
        },
        {
            "name": "model",
            "label": "Model",
            "type": "query",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": f"label_values({s.SUCCESS}, model)", "refId": "models"},
            "definition": f"label_values({s.SUCCESS}, model)",
            "refresh": 2,
            "multi": True,
            "includeAll": True,
            "allValue": ".*",
            "current": {"text": "All", "value": "$__all"},
        },
    ]


def dashboard() -> dict[str, Any]:
    """The whole dashboard."""
    return {
        "uid": UID,
        "title": "maas: models as a service",
        "description": "Per-model traffic, latency, batching, shedding and the stack's health.",
        "tags": ["maas", "triton"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": variables()},
        "panels": [panel_json(panel, number) for number, panel in enumerate(PANELS)],
    }


def render_dashboard() -> str:
    """The dashboard as JSON."""
    return json.dumps(dashboard(), indent=2) + "\n"


def render_dashboard_provider(folder: str) -> str:
    """Grafana's dashboard provisioning file, loading every dashboard in folder."""
    provider = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "maas",
                "folder": "maas",
                "type": "file",
                "disableDeletion": False,
                "updateIntervalSeconds": 30,
                "options": {"path": folder},
            }
        ],
    }
    return str(yaml.safe_dump(provider, sort_keys=False))


def render_datasource(prometheus_url: str) -> str:
    """Grafana's datasource provisioning file for the Prometheus that `maas monitor` runs."""
    source = {
        "apiVersion": 1,
        "datasources": [
            {"name": "maas Prometheus", "type": "prometheus", "access": "proxy",
             "url": prometheus_url, "isDefault": True},
        ],
    }  # fmt: skip
    return str(yaml.safe_dump(source, sort_keys=False))
