"""A Locust load test of one model at one or more load levels, run headless in a subprocess.

Locust patches the standard library for gevent when imported, so it runs in its own
interpreter (`maas.benchmarks.locust_run`); this side describes the run and reads the results.
Each level has a warm-up, then a measurement window opened and closed with no call in flight,
with the server's statistics read at both edges: client and server count the same requests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maas.base.errors import LoadTestError

from .server_stats import ModelBreakdown

DELAYED_WARNING_FRACTION = 0.05  # more delayed sends than this: the offered rate was not held
REACHED_FRACTION = 0.95  # achieved below this share of the offered rate: not reached


@dataclass(frozen=True)
class Level:
    """One load level: `users` concurrent users, offering `rate` requests/s (0: closed loop)."""

    users: int
    rate: float = 0.0

    @property
    def label(self) -> str:
        """e.g. '8 users' or '120/s'."""
        return f"{self.rate:g}/s" if self.rate else f"{self.users} users"


@dataclass(frozen=True)
class LoadSpec:
    """A whole run: the users' settings (see locust_users.LoadConfig) and the levels."""

    config: dict[str, Any]
    levels: tuple[Level, ...]
    duration_s: float = 10.0
    warmup_s: float = 3.0
    stats_url: str = ""  # Triton's HTTP host:port for /v2/models/stats; empty: no server stats
    # the server's processes, for their CPU time and memory (descendants included); (): unknown
    server_pids: tuple[int, ...] = ()
    progress: bool = True  # a line per level on stderr; off where the caller prints its own
    workers: int = 1  # load-generator processes; > 1: Locust's master with this many workers


@dataclass
class LevelResult:
    """What one level measured. Latencies in ms from Locust's request events, exact."""

    level: Level
    duration_s: float
    requests: int  # successful calls in the window
    failures: int
    throughput_rps: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    locust_requests: int  # Locust's own counters over the same window, failures included
    locust_failures: int
    delayed: int = 0  # open loop: calls sent more than the tolerance after their slot
    late_p99_ms: float = 0.0
    send_window_s: float = 0.0  # from opening the window to closing it for new calls
    client_cpu_ms: float = 0.0  # CPU time of the load generator per call (all its threads)
    server_cpu_ms: float = (
        0.0  # CPU time of the server and its model processes per call; 0: unknown
    )
    server_peak_rss_mib: float = 0.0  # the server's resident memory at its highest; 0: unknown
    errors: dict[str, int] = field(default_factory=dict)
    server: list[ModelBreakdown] = field(default_factory=list)

    @property
    def offered_rps(self) -> float:
        """The rate asked for; 0 in closed loop."""
        return self.level.rate

    def rate_warning(self) -> str:
        """perf_analyzer-style warning when an open-loop level could not hold its rate."""
        if not self.level.rate:
            return ""
        sent = self.requests + self.failures
        delayed = self.delayed / sent if sent else 1.0
        window = self.send_window_s or self.duration_s
        achieved = sent / window if window else 0.0
        if delayed <= DELAYED_WARNING_FRACTION and achieved >= REACHED_FRACTION * self.level.rate:
            return ""
        return (
            f"offered {self.level.rate:g}/s was not held: {achieved:.1f}/s sent, "
            f"{delayed:.0%} of calls late (p99 {self.late_p99_ms:.1f} ms behind schedule); "
            f"add users (--users) or lower the rate"
        )

    def served(self, model: str) -> ModelBreakdown | None:
        """The server's breakdown for one model, if it ran in this window."""
        return next((row for row in self.server if row.model == model), None)

    def summary(self) -> str:
        """One line for people."""
        line = (
            f"{self.level.label}: {self.throughput_rps:.1f} req/s, p50 {self.p50_ms:.2f} ms, "
            f"p95 {self.p95_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, "
            f"{self.requests} ok, {self.failures} failed"
        )
        warning = self.rate_warning()
        return f"{line}\n  WARNING: {warning}" if warning else line

    def as_row(self) -> dict[str, Any]:
        """A flat dict for CSV and JSON (server rows kept as a list)."""
        row = asdict(self)
        row["level"] = self.level.label
        row["users"], row["rate"] = self.level.users, self.level.rate
        row["rate_warning"] = self.rate_warning()
        return row


def summarise_window(
    level: Level,
    duration_s: float,
    latencies_ms: Sequence[float],
    late_ms: Sequence[float],
    failures: int,
    errors: Mapping[str, int],
    locust_counts: tuple[int, int],
    delayed: int = 0,
) -> LevelResult:
    """Percentiles of the successful calls' latencies, and the window's counts."""
    values = np.asarray(latencies_ms, dtype=np.float64)
    late = np.asarray(late_ms, dtype=np.float64)

    def percentile(data: np.ndarray, q: float) -> float:
        return float(np.percentile(data, q)) if data.size else float("nan")

    return LevelResult(
        level=level,
        duration_s=duration_s,
        requests=int(values.size),
        failures=failures,
        throughput_rps=values.size / duration_s if duration_s else 0.0,
        mean_ms=float(values.mean()) if values.size else float("nan"),
        p50_ms=percentile(values, 50),
        p90_ms=percentile(values, 90),
        p95_ms=percentile(values, 95),
        p99_ms=percentile(values, 99),
        locust_requests=locust_counts[0],
        locust_failures=locust_counts[1],
        delayed=delayed,
        late_p99_ms=percentile(late, 99) if level.rate and late.size else 0.0,
        errors=dict(errors),
    )


def result_from_dict(raw: Mapping[str, Any]) -> LevelResult:
    """Rebuild a LevelResult from the driver's JSON."""
    fields = dict(raw)
    fields["level"] = Level(**fields["level"])
    fields["server"] = [ModelBreakdown(**row) for row in fields.get("server", [])]
    return LevelResult(**fields)


def run_load_test(spec: LoadSpec, timeout_s: float | None = None) -> list[LevelResult]:
    """Run the spec in a Locust subprocess; its progress lines go to stderr."""
    with tempfile.TemporaryDirectory(prefix="maas-locust-") as scratch:
        spec_path, out_path = Path(scratch) / "spec.json", Path(scratch) / "results.json"
        spec_path.write_text(json.dumps(asdict(spec)))
        budget = timeout_s or 120 + len(spec.levels) * (spec.duration_s + spec.warmup_s + 60)
        try:
            completed = subprocess.run(
                [sys.executable, "-m", "maas.benchmarks.locust_run", str(spec_path), str(out_path)],
                timeout=budget,
                check=False,
                stdout=subprocess.PIPE,
                text=True,
            )
        except subprocess.TimeoutExpired:
            raise LoadTestError(
                f"the load generator did not finish within {budget:.0f} s"
            ) from None
        if completed.returncode != 0 or not out_path.is_file():
            raise LoadTestError(
                f"the load generator failed (exit {completed.returncode}): "
                f"{completed.stdout.strip()[-2000:] or 'see the log above'}"
            )
        return [result_from_dict(raw) for raw in json.loads(out_path.read_text())]
