"""Triton's own per-model statistics, read before and after a run and turned into a breakdown.

`/v2/models/stats` holds cumulative counters (requests, executions, and the nanoseconds spent
queued, gathering inputs, inferring and returning outputs); the difference of two snapshots is
what one measured window did.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from maas.base.errors import StatsError
from maas.clients.transport import auth_headers

Snapshot = dict[str, dict[str, int]]  # model → counter name → value
PHASES = ("queue", "compute_input", "compute_infer", "compute_output")
_COUNTERS = ("success", "fail", *PHASES)


def fetch_snapshot(http_url: str, timeout_s: float = 10.0) -> Snapshot:
    """Every model's cumulative counters from Triton's HTTP statistics endpoint (host:port)."""
    address = f"http://{http_url}/v2/models/stats"
    request = urllib.request.Request(address, headers=auth_headers())
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = json.load(response)
    except (OSError, ValueError) as error:
        raise StatsError(f"cannot read server statistics from {address}: {error}") from None
    return parse_snapshot(body)


def parse_snapshot(body: Mapping[str, Any]) -> Snapshot:
    """Sum each model's counters over its versions."""
    snapshot: Snapshot = {}
    for entry in body.get("model_stats", ()):
        counters = snapshot.setdefault(str(entry["name"]), dict.fromkeys(_counter_keys(), 0))
        counters["inferences"] += int(entry.get("inference_count", 0))
        counters["executions"] += int(entry.get("execution_count", 0))
        stats = entry.get("inference_stats", {})
        for name in _COUNTERS:
            counters[f"{name}_count"] += int(stats.get(name, {}).get("count", 0))
            counters[f"{name}_ns"] += int(stats.get(name, {}).get("ns", 0))
    return snapshot


def _counter_keys() -> list[str]:
    return ["inferences", "executions"] + [f"{n}_{u}" for n in _COUNTERS for u in ("count", "ns")]


@dataclass(frozen=True)
class ModelBreakdown:
    """What one model did during a window, per request; times in milliseconds."""

    model: str
    requests: int  # successful requests
    failures: int
    executions: int  # batches the model ran
    avg_batch: float  # requests (rows) per execution
    request_ms: float  # mean end-to-end time inside the server
    queue_ms: float
    compute_input_ms: float
    compute_infer_ms: float
    compute_output_ms: float

    def as_row(self) -> dict[str, object]:
        """A flat dict for CSV and JSON."""
        return asdict(self)


def breakdown(before: Snapshot, after: Snapshot) -> list[ModelBreakdown]:
    """Per-model breakdown of what happened between two snapshots; idle models left out."""
    rows = []
    for model, end in sorted(after.items()):
        start = before.get(model, dict.fromkeys(end, 0))
        delta = {key: end[key] - start.get(key, 0) for key in end}
        if not delta["success_count"] and not delta["fail_count"]:
            continue
        rows.append(
            ModelBreakdown(
                model=model,
                requests=delta["success_count"],
                failures=delta["fail_count"],
                executions=delta["executions"],
                avg_batch=delta["inferences"] / delta["executions"] if delta["executions"] else 0,
                request_ms=_mean_ms(delta, "success"),
                queue_ms=_mean_ms(delta, "queue"),
                compute_input_ms=_mean_ms(delta, "compute_input"),
                compute_infer_ms=_mean_ms(delta, "compute_infer"),
                compute_output_ms=_mean_ms(delta, "compute_output"),
            )
        )
    return rows


def _mean_ms(delta: Mapping[str, int], counter: str) -> float:
    count = delta[f"{counter}_count"]
    return delta[f"{counter}_ns"] / count / 1e6 if count else 0.0
