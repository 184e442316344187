"""Prometheus recording and alert rules for a maas stack, written from typed budgets.

Recording rules turn the raw counters into per-model signals (requests/s, error and shed ratios,
queue and compute time per request, formed batch size, p50/p99, padding waste); the alerts and
the dashboard read those, so a signal is defined once. Queue time per request is total queue
time over total requests across every replica, i.e. weighted by requests: Triton's own chart
averages per-pod ratios (with a +1 in each denominator), which under-reports a loaded replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from maas.base.errors import MonitorError

from . import signals as s

WINDOW = "1m"  # rate window of the recording rules; ≥ 4 scrapes at the default 15 s
MiB = 1024 * 1024

# Recording rule names (level:metric:operation, as Prometheus's naming guide has them).
REQUESTS = f"maas:model_requests:rate{WINDOW}"
FAILURES = f"maas:model_failures:rate{WINDOW}"
ERROR_RATIO = f"maas:model_error_ratio:rate{WINDOW}"
QUEUE_PER_REQUEST = f"maas:model_queue_seconds_per_request:rate{WINDOW}"
COMPUTE_PER_REQUEST = f"maas:model_compute_seconds_per_request:rate{WINDOW}"
BATCH_SIZE = f"maas:model_batch_size:rate{WINDOW}"
P50 = "maas:model_latency_p50:seconds"
P99 = "maas:model_latency_p99:seconds"
PADDING_WASTE = f"maas:model_padding_waste:rate{WINDOW}"
REFUSED = f"maas:gateway_refused:rate{WINDOW}"
ARRIVED = f"maas:gateway_arrived:rate{WINDOW}"
SHED_RATIO = f"maas:model_shed_ratio:rate{WINDOW}"
IN_FLIGHT = "maas:gateway_in_flight"
WAITING = "maas:gateway_waiting"


@dataclass(frozen=True)
class RuleOptions:
    """Budgets the alerts hold the stack to; `hold=False` fires at once (tests, demos)."""

    p99_budget_ms: float = 1000.0
    queue_budget_ms: float = 100.0  # mean queue time per request at Triton
    error_ratio: float = 0.05
    shed_ratio: float = 0.05
    memory_growth: float = 0.5  # resident memory up by this fraction within an hour
    shm_growth_mib: float = 256.0  # a model's shared-memory regions up by this within an hour
    hold: bool = True

    def __post_init__(self) -> None:
        for name in ("p99_budget_ms", "queue_budget_ms", "shm_growth_mib", "memory_growth"):
            if getattr(self, name) <= 0:
                raise MonitorError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("error_ratio", "shed_ratio"):
            if not 0 < getattr(self, name) < 1:
                raise MonitorError(f"{name} must be between 0 and 1, got {getattr(self, name)}")


def rate(metric: str, selector: str = "") -> str:
    """The rate of a counter over the rules' window, as PromQL."""
    return f"rate({metric}{{{selector}}}[{WINDOW}])" if selector else f"rate({metric}[{WINDOW}])"


def per_model(expression: str) -> str:
    """Summed over versions, instances and replicas, per model."""
    return f"sum by (model) ({expression})"


def queue_seconds_per_request(
    by: str = "model", selector: str = "", window: str = WINDOW, idle_as_zero: bool = False
) -> str:
    """Queue time per request, weighted by requests: a sum of rates over a sum of rates.

    idle_as_zero: 0 (not NaN) where nothing succeeded in the window, for autoscalers.
    """
    braces = f"{{{selector}}}" if selector else ""
    queued = f"sum by ({by}) (rate({s.QUEUE_US}{braces}[{window}]))"
    served = f"sum by ({by}) (rate({s.SUCCESS}{braces}[{window}]))"
    if idle_as_zero:
        served = f"clamp_min({served}, 1e-9)"
    return f"{queued} / {served} / 1e6"


def gateway_backends(kind: str) -> str:
    """A regex selector of the gateway's admitting (`model`) or refusing backends."""
    return f'proxy=~"(http|grpc)_{kind}_.+"'


def refused_at_the_door() -> str:
    """Rates of requests the refusing backends answered (the model's queue was full)."""
    http = rate(s.GATEWAY_RESPONSES, 'proxy=~"http_refused_.+", code="5xx"')
    grpc = rate(s.GATEWAY_REQUESTS, 'proxy=~"grpc_refused_.+"')
    return f"{http} or {grpc}"


def recording_rules() -> list[dict[str, str]]:
    """The per-model signals, each as one recording rule."""
    compute = " + ".join(rate(metric) for metric in s.COMPUTE_US)
    successes = per_model(rate(s.SUCCESS))
    records = {
        REQUESTS: successes,
        FAILURES: per_model(rate(s.FAILURE)),
        ERROR_RATIO: f"{FAILURES} / ({REQUESTS} + {FAILURES})",
        QUEUE_PER_REQUEST: queue_seconds_per_request(),
        COMPUTE_PER_REQUEST: f"{per_model(compute)} / {successes} / 1e6",
        BATCH_SIZE: f"{per_model(rate(s.INFERENCES))} / {per_model(rate(s.EXECUTIONS))}",
        # Quantiles cannot be averaged across replicas: the worst replica's is the honest one.
        P50: f'max by (model) ({s.LATENCY_SUMMARY}{{quantile="0.5"}}) / 1e6',
        P99: f'max by (model) ({s.LATENCY_SUMMARY}{{quantile="0.99"}}) / 1e6',
        PADDING_WASTE: (
            f"1 - {per_model(rate(s.REAL_TOKENS))} / {per_model(rate(s.COMPUTED_TOKENS))}"
        ),
        REFUSED: s.by_model_and_protocol(
            f"{refused_at_the_door()} or "
            f"{rate(s.GATEWAY_QUEUE_TIMEOUTS, gateway_backends('model'))}"
        ),
        ARRIVED: s.by_model_and_protocol(
            f"{refused_at_the_door()} or {rate(s.GATEWAY_REQUESTS, gateway_backends('model'))}"
        ),
        SHED_RATIO: f"{per_model(REFUSED)} / {per_model(ARRIVED)}",
        IN_FLIGHT: s.by_model_and_protocol(f"{s.GATEWAY_SESSIONS}{{{gateway_backends('model')}}}"),
        WAITING: s.by_model_and_protocol(f"{s.GATEWAY_WAITING}{{{gateway_backends('model')}}}"),
    }
    return [{"record": name, "expr": expression} for name, expression in records.items()]


@dataclass(frozen=True)
class Alert:
    """One alert rule: its condition, how long it must hold, and what it tells the operator."""

    name: str
    expr: str
    hold: str  # Prometheus duration the condition must hold before the alert fires
    severity: str
    summary: str
    description: str

    def rule(self, hold: bool) -> dict[str, Any]:
        """The rule as Prometheus reads it."""
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if hold and self.hold != "0s":
            rule["for"] = self.hold
        rule["labels"] = {"severity": self.severity}
        rule["annotations"] = {"summary": self.summary, "description": self.description}
        return rule


def alerts(options: RuleOptions) -> list[Alert]:
    """The alerts an operator of a maas stack wants, with the budgets filled in."""
    jobs = "|".join(s.JOBS.values())
    restarts = (
        f'label_replace(increase({s.TRITON_RESTARTS}[10m]), "process", "tritonserver", "", "")'
        f' > 0 or label_replace(increase({s.GATEWAY_RESTARTS}[10m]), "process", "gateway", "",'
        ' "") > 0'
    )
    return [
        Alert(
            "MaasTargetDown", f'up{{job=~"{jobs}"}} == 0', "1m", "critical",
            "{{ $labels.job }} at {{ $labels.instance }} is not answering scrapes",
            "Prometheus cannot read this endpoint: the process is down or unreachable.",
        ),
        Alert(
            "MaasModelErrors", f"{ERROR_RATIO} > {options.error_ratio}", "2m", "warning",
            "{{ $labels.model }}: {{ $value | humanizePercentage }} of requests fail",
            f"More than {options.error_ratio:.0%} of the model's requests failed over "
            f"{WINDOW} (bad input, model errors or cancellations; see Triton's log).",
        ),
        Alert(
            "MaasRequestsShed", f"{SHED_RATIO} > {options.shed_ratio}", "2m", "warning",
            "{{ $labels.model }}: the gateway sheds {{ $value | humanizePercentage }} of requests",
            f"More than {options.shed_ratio:.0%} of the model's requests were refused at its "
            "admission limit: add instances or replicas, or raise the limit if latency allows.",
        ),
        Alert(
            "MaasQueueTimeOverBudget",
            f"{QUEUE_PER_REQUEST} > {options.queue_budget_ms / 1000:g}", "5m", "warning",
            "{{ $labels.model }}: requests wait {{ $value | humanizeDuration }} in Triton's queue",
            f"Mean queue time per request (weighted by requests across replicas) is above "
            f"the {options.queue_budget_ms:g} ms budget.",
        ),
        Alert(
            "MaasLatencyP99OverBudget", f"{P99} > {options.p99_budget_ms / 1000:g}", "5m",
            "warning", "{{ $labels.model }}: p99 latency is {{ $value | humanizeDuration }}",
            f"Triton's own p99 request latency is above the {options.p99_budget_ms:g} ms budget.",
        ),
        Alert(
            "MaasServerRestarted", restarts, "0s", "warning",
            "{{ $labels.process }} was restarted by the watchdog",
            "The process died and was restarted in the last 10 minutes; its log says why.",
        ),
        Alert(
            "MaasStubRestarted", f"increase({s.STUB_RELOADS}[10m]) > 0", "0s", "warning",
            "{{ $labels.model }}: a Python-backend stub died and the model was reloaded",
            "A stub process died (often out of memory) in the last 10 minutes.",
        ),
        Alert(
            "MaasSharedMemoryLow", f"{s.SHM_FREE_BYTES} / {s.SHM_SIZE_BYTES} < 0.1", "5m",
            "critical", "/dev/shm is {{ $value | humanizePercentage }} free",
            "Python-backend regions and shared-memory clients need /dev/shm; new model "
            "instances will fail to start.",
        ),
        Alert(
            "MaasMemoryGrowing",
            f"({s.RESIDENT_BYTES} - {s.RESIDENT_BYTES} offset 1h) / ({s.RESIDENT_BYTES} "
            f"offset 1h) > {options.memory_growth} and deriv({s.RESIDENT_BYTES}[15m]) > 0",
            "15m", "warning",
            "{{ $labels.process }}{{ with $labels.model }} {{ . }}{{ end }}: resident memory "
            "still growing",
            f"Resident memory grew by more than {options.memory_growth:.0%} within an hour "
            "and is still growing: a leak, or a cache without bound.",
        ),
        Alert(
            "MaasSharedMemoryGrowing",
            f"{s.SHM_REGION_BYTES} - {s.SHM_REGION_BYTES} offset 1h > "
            f"{int(options.shm_growth_mib * MiB)} and deriv({s.SHM_REGION_BYTES}[15m]) > 0",
            "15m", "warning",
            "{{ $labels.model }}: shared-memory regions still growing",
            f"The model's Python-backend regions grew by more than {options.shm_growth_mib:g} "
            "MiB within an hour and are still growing.",
        ),
    ]  # fmt: skip


def rule_groups(options: RuleOptions) -> dict[str, Any]:
    """The rule file's content."""
    return {
        "groups": [
            {"name": "maas-signals", "rules": recording_rules()},
            {"name": "maas-alerts", "rules": [a.rule(options.hold) for a in alerts(options)]},
        ]
    }


def render_rules(options: RuleOptions) -> str:
    """The rule file, as YAML."""
    header = "# Written by maas (maas monitor --write); the budgets are `maas monitor`'s options.\n"
    return header + str(yaml.safe_dump(rule_groups(options), sort_keys=False, width=10_000))
