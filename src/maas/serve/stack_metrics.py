"""The stack's own Prometheus metrics: what only the watchdog knows.

Triton exports requests, latencies and the adapters' counters; the gateway exports admission.
Neither says that a process was restarted, nor how much memory the stack's processes and its
Python-backend shared-memory regions hold. This endpoint does, read at every scrape.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import psutil
from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from maas.base.errors import ServerError

from .audit import Usage, UsageKey
from .stubs import SHM_DIR, Stub

# The names other layers (rules, dashboard, `maas top`) read; exported with these exact names.
TRITON_RESTARTS = "maas_triton_restarts_total"
GATEWAY_RESTARTS = "maas_gateway_restarts_total"
STUB_RELOADS = "maas_stub_reloads_total"
RESIDENT_BYTES = "maas_process_resident_bytes"
SHM_REGION_BYTES = "maas_shm_region_bytes"
SHM_FREE_BYTES = "maas_shm_free_bytes"
SHM_SIZE_BYTES = "maas_shm_size_bytes"
# Per tenant, model and protocol, from the audit log (usage metering).
TENANT_COUNTERS = {
    "maas_tenant_requests_total": ("requests", "Requests of a tenant to a model"),
    "maas_tenant_failures_total": ("failures", "Failed requests (HTTP ≥ 400, gRPC status ≠ 0)"),
    "maas_tenant_bytes_in_total": ("bytes_in", "Request bytes received from the tenant"),
    "maas_tenant_bytes_out_total": ("bytes_out", "Response bytes sent to the tenant"),
    "maas_tenant_items_total": ("items", "Images or texts the tenant sent (batch sizes summed)"),
    "maas_tenant_tokens_total": ("tokens", "Tokens of the tenant's texts, from the tokenizer"),
    "maas_tenant_seconds_total": ("seconds", "Seconds the tenant's requests took at the gateway"),
    "maas_tenant_triton_seconds_total": (
        "triton_seconds",
        "Seconds until Triton answered the tenant's requests (queue and compute)",
    ),
}


@dataclass
class Restarts:
    """What the watchdog has restarted since the stack started."""

    triton: int = 0  # of every replica
    gateway: int = 0
    stubs: dict[str, int] = field(default_factory=dict)  # model → reloads after a dead stub
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self) -> int:
        """Count one restart of a tritonserver (each replica's loop counts its own); the total."""
        with self._lock:
            self.triton += 1
            return self.triton

    def stub_reloaded(self, model: str) -> None:
        """Count one reload of model after its stub died."""
        with self._lock:
            self.stubs[model] = self.stubs.get(model, 0) + 1


class WatchedStack(Protocol):
    """What the collector reads of a running stack."""

    @property
    def restart_counts(self) -> Restarts:
        """What the watchdog restarted so far."""

    def process_ids(self) -> dict[str, int]:
        """Role → pid of the processes running now."""

    def current_stubs(self) -> list[Stub]:
        """The Python-backend stubs running now."""

    def usage_now(self) -> dict[UsageKey, Usage]:
        """Requests per tenant, model and protocol so far."""


def resident_bytes(pid: int) -> int | None:
    """A process's resident set size, or None once it has gone."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None


def region_bytes(region: str) -> int:
    """Bytes a shared-memory region occupies (pages touched, not its nominal size)."""
    try:
        return (SHM_DIR / region).stat().st_blocks * 512
    except OSError:
        return 0


class StackCollector(Collector):
    """Collects restarts, resident memory per process and shared memory at every scrape."""

    def __init__(self, stack: WatchedStack) -> None:
        self.stack = stack

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """The metrics, read now."""
        stubs = self.stack.current_stubs()
        yield from self._restarts(self.stack.restart_counts, {stub.model for stub in stubs})
        yield self._resident(self.stack.process_ids(), stubs)
        yield from self._shared_memory(stubs)
        yield from self._usage(self.stack.usage_now())

    @staticmethod
    def _usage(usage: dict[UsageKey, Usage]) -> Iterator[CounterMetricFamily]:
        for name, (attribute, description) in TENANT_COUNTERS.items():
            family = CounterMetricFamily(
                name.removesuffix("_total"), description, labels=["tenant", "model", "protocol"]
            )
            for key, counted in sorted(usage.items()):
                family.add_metric(list(key), getattr(counted, attribute))
            yield family

    @staticmethod
    def _restarts(restarts: Restarts, models: set[str]) -> Iterator[CounterMetricFamily]:
        for name, value, what in (
            (TRITON_RESTARTS, restarts.triton, "tritonserver"),
            (GATEWAY_RESTARTS, restarts.gateway, "the gateway"),
        ):
            yield CounterMetricFamily(
                name.removesuffix("_total"), f"Restarts of {what} after it died", value=value
            )
        reloads = CounterMetricFamily(
            STUB_RELOADS.removesuffix("_total"),
            "Reloads of a model after its Python-backend stub died",
            labels=["model"],
        )
        # Every model with a stub from 0, so that its first reload is an increase too.
        for model in sorted(models | set(restarts.stubs)):
            reloads.add_metric([model], restarts.stubs.get(model, 0))
        yield reloads

    @staticmethod
    def _resident(processes: dict[str, int], stubs: list[Stub]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            RESIDENT_BYTES,
            "Resident memory of the stack's processes (stubs summed per model)",
            labels=["process", "model"],
        )
        for process, pid in sorted(processes.items()):
            add_if_alive(family, [process, ""], [pid])
        for model in sorted({stub.model for stub in stubs}):
            add_if_alive(family, ["stub", model], [s.pid for s in stubs if s.model == model])
        return family

    @staticmethod
    def _shared_memory(stubs: list[Stub]) -> Iterable[GaugeMetricFamily]:
        regions = GaugeMetricFamily(
            SHM_REGION_BYTES,
            "Shared memory the Python-backend regions of a model's stubs occupy",
            labels=["model"],
        )
        for model in sorted({stub.model for stub in stubs}):
            used = sum(region_bytes(s.region) for s in stubs if s.model == model)
            regions.add_metric([model], used)
        yield regions
        try:
            stats = os.statvfs(SHM_DIR)
        except OSError:
            return  # no /dev/shm: nothing to report
        yield GaugeMetricFamily(
            SHM_FREE_BYTES, f"Free bytes in {SHM_DIR}", value=stats.f_bavail * stats.f_frsize
        )
        yield GaugeMetricFamily(
            SHM_SIZE_BYTES, f"Size of {SHM_DIR}", value=stats.f_blocks * stats.f_frsize
        )


def add_if_alive(family: GaugeMetricFamily, labels: list[str], pids: list[int]) -> None:
    """Add the summed resident memory of pids, unless none of them is running."""
    sizes = [size for size in map(resident_bytes, pids) if size is not None]
    if sizes:
        family.add_metric(labels, sum(sizes))


class StackMetricsServer:
    """The HTTP endpoint of the stack's metrics, served from a thread of this process."""

    def __init__(self, stack: WatchedStack, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StackCollector(stack))
        self.host, self.port = host, port
        self._stop: Callable[[], None] | None = None

    @property
    def url(self) -> str:
        """Where the metrics are."""
        return f"http://{self.host}:{self.port}/metrics"

    def start(self) -> None:
        """Listen on host:port."""
        try:
            server, thread = start_http_server(self.port, self.host, self.registry)
        except OSError as failure:
            raise ServerError(
                f"cannot listen for the stack's metrics on {self.host}:{self.port}: "
                f"{failure.strerror}; pick another --stack-metrics-port"
            ) from failure

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        self._stop = stop

    def stop(self) -> None:
        """Stop listening; safe to call twice."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()
