"""`maas top`: a live per-model view of a running stack, computed from two scrapes.

Rates are the difference of the counters between two snapshots over the time between them;
p50/p99 are Triton's own summaries (worst version); in flight and waiting are the gateway's
gauges now. The same definitions as the recording rules (`rules.py`), in Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

from . import signals as s
from .scrape import Snapshot

NAN = float("nan")


@dataclass(frozen=True)
class ModelRow:
    """One model's line of the view."""

    model: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    queue_ms: float  # mean per request over the interval
    compute_ms: float
    batch_size: float  # rows per execution over the interval
    in_flight: int  # at Triton, admitted by the gateway
    waiting: int  # in the gateway's queue for the model
    shed_per_s: float
    errors_per_s: float

    @property
    def idle(self) -> bool:
        """No traffic in the interval and nothing in flight."""
        busy = self.requests_per_s + self.shed_per_s + self.errors_per_s + self.in_flight
        return busy == 0 and self.waiting == 0


@dataclass(frozen=True)
class StackRow:
    """The stack's health under the table."""

    resident_mib: dict[str, float]  # process → MiB (stubs summed)
    restarts: int
    stub_reloads: int
    shm_free_mib: float


def ratio(numerator: float, denominator: float) -> float:
    """Numerator / denominator, NaN when nothing was counted."""
    return numerator / denominator if denominator > 0 else NAN


def delta(before: Snapshot, after: Snapshot, name: str, **match: str) -> float:
    """How much a counter grew between two snapshots (a restart's reset counts from zero)."""
    grown = after.total(name, **match) - before.total(name, **match)
    return grown if grown >= 0 else after.total(name, **match)


def quantile_ms(snapshot: Snapshot, model: str, quantile: str) -> float:
    """The worst version's quantile of Triton's request latency summary, in ms."""
    values = [
        value
        for _, value in snapshot.series(s.LATENCY_SUMMARY, model=model, quantile=quantile)
        if not math.isnan(value)
    ]
    return max(values) / 1000 if values else NAN


def gateway_counts(snapshot: Snapshot) -> dict[str, dict[str, float]]:
    """Per model: refusals so far, and requests in flight and waiting now."""
    counts: dict[str, dict[str, float]] = {}
    for proxy in snapshot.label_values(s.GATEWAY_REQUESTS, "proxy"):
        backend = s.GatewayBackend.parse(proxy)
        if backend is None:
            continue
        model = counts.setdefault(backend.model, {"shed": 0.0, "in_flight": 0.0, "waiting": 0.0})
        if backend.refusing:
            metric, labels = backend.refusals_metric()
            model["shed"] += snapshot.total(metric, proxy=proxy, **labels)
        else:
            model["shed"] += snapshot.total(s.GATEWAY_QUEUE_TIMEOUTS, proxy=proxy)
            model["in_flight"] += snapshot.total(s.GATEWAY_SESSIONS, proxy=proxy)
            model["waiting"] += snapshot.total(s.GATEWAY_WAITING, proxy=proxy)
    return counts


def model_rows(before: Snapshot, after: Snapshot) -> list[ModelRow]:
    """Every model Triton or the gateway reports, busiest first."""
    seconds = max(after.at - before.at, 1e-6)
    gateway_before, gateway_after = gateway_counts(before), gateway_counts(after)
    models = after.label_values(s.SUCCESS, "model") | set(gateway_after)
    rows = []
    for model in models:
        succeeded = delta(before, after, s.SUCCESS, model=model)
        compute = sum(delta(before, after, name, model=model) for name in s.COMPUTE_US)
        gateway = gateway_after.get(model, {})
        shed = gateway.get("shed", 0.0) - gateway_before.get(model, {}).get("shed", 0.0)
        rows.append(
            ModelRow(
                model=model,
                requests_per_s=succeeded / seconds,
                p50_ms=quantile_ms(after, model, "0.5"),
                p99_ms=quantile_ms(after, model, "0.99"),
                queue_ms=ratio(delta(before, after, s.QUEUE_US, model=model), succeeded) / 1000,
                compute_ms=ratio(compute, succeeded) / 1000,
                batch_size=ratio(
                    delta(before, after, s.INFERENCES, model=model),
                    delta(before, after, s.EXECUTIONS, model=model),
                ),
                in_flight=int(gateway.get("in_flight", 0)),
                waiting=int(gateway.get("waiting", 0)),
                shed_per_s=max(shed, 0.0) / seconds,
                errors_per_s=delta(before, after, s.FAILURE, model=model) / seconds,
            )
        )
    return sorted(rows, key=lambda row: (-row.requests_per_s - row.shed_per_s, row.model))


def stack_row(snapshot: Snapshot) -> StackRow | None:
    """The stack's own health, if its endpoint was read."""
    if s.RESIDENT_BYTES not in snapshot.samples:
        return None
    resident: dict[str, float] = {}
    for labels, value in snapshot.series(s.RESIDENT_BYTES):
        resident[labels.get("process", "?")] = resident.get(labels.get("process", "?"), 0) + value
    return StackRow(
        resident_mib={process: size / 2**20 for process, size in sorted(resident.items())},
        restarts=int(snapshot.total(s.TRITON_RESTARTS) + snapshot.total(s.GATEWAY_RESTARTS)),
        stub_reloads=int(snapshot.total(s.STUB_RELOADS)),
        shm_free_mib=snapshot.total(s.SHM_FREE_BYTES) / 2**20,
    )


def number(value: float, digits: int = 1) -> str:
    """A cell: '-' for no data."""
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


COLUMNS = (
    "model", "req/s", "p50 ms", "p99 ms", "queue ms", "compute ms", "batch",
    "in flight", "waiting", "shed/s", "errors/s",
)  # fmt: skip


def render(rows: list[ModelRow], stack: StackRow | None, title: str, show_idle: bool) -> Table:
    """The frame: one line per model (idle ones only if asked), the stack's health below."""
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column(COLUMNS[0], no_wrap=True)  # names are what the operator searches for
    for column in COLUMNS[1:]:
        table.add_column(column, justify="right")
    shown = [row for row in rows if show_idle or not row.idle]
    for row in shown:
        table.add_row(
            row.model,
            number(row.requests_per_s),
            number(row.p50_ms),
            number(row.p99_ms),
            number(row.queue_ms, 2),
            number(row.compute_ms, 2),
            number(row.batch_size, 2),
            str(row.in_flight),
            str(row.waiting),
            Text(number(row.shed_per_s), style="bold red" if row.shed_per_s > 0 else ""),
            Text(number(row.errors_per_s), style="bold red" if row.errors_per_s > 0 else ""),
        )
    if not shown:
        table.add_row("(no traffic)", *[""] * (len(COLUMNS) - 1))
    table.caption = describe_stack(stack, idle=len(rows) - len(shown))
    table.caption_justify = "left"
    return table


def describe_stack(stack: StackRow | None, idle: int) -> str:
    """The caption: memory, restarts, shared memory, hidden idle models."""
    parts = [f"{idle} idle model(s) hidden (--all shows them)"] if idle else []
    if stack is not None:
        memory = ", ".join(f"{process} {mib:.0f}" for process, mib in stack.resident_mib.items())
        parts += [
            f"RSS MiB: {memory}",
            f"restarts {stack.restarts}, stub reloads {stack.stub_reloads}",
            f"/dev/shm free {stack.shm_free_mib:.0f} MiB",
        ]
    return " · ".join(parts)
