"""A closed-loop load test: N workers, each sending its next request when the last returns."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

Request = Callable[[], object]


@dataclass(frozen=True)
class LoadResult:
    """What a run measured; latencies in milliseconds."""

    concurrency: int
    duration_s: float
    requests: int
    failures: int
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    first_error: str = ""

    def summary(self) -> str:
        """One line for people."""
        return (
            f"concurrency {self.concurrency}: {self.throughput_rps:.1f} req/s, "
            f"p50 {self.p50_ms:.1f} ms, p95 {self.p95_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
            f"{self.requests} requests, {self.failures} failed"
        )

    def write_json(self, path: Path) -> None:
        """Write the result as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


@dataclass
class _Worker:
    latencies: list[float]
    failures: int = 0
    first_error: str = ""


def run_closed_loop(
    make_request: Callable[[], Request], concurrency: int, duration_s: float, warmup_s: float = 1.0
) -> LoadResult:
    """Run make_request() once per worker, then call its result in a loop for duration_s.

    Requests that start during the warm-up are not counted.
    """
    if concurrency < 1 or duration_s <= 0:
        raise ValueError("concurrency must be ≥ 1 and duration_s > 0")
    requests = [make_request() for _ in range(concurrency)]  # clients built outside the timing
    workers = [_Worker([]) for _ in range(concurrency)]
    start = time.perf_counter()
    measure_from, stop_at = start + warmup_s, start + warmup_s + duration_s
    threads = [
        threading.Thread(target=_loop, args=(request, worker, measure_from, stop_at))
        for request, worker in zip(requests, workers, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return _summarise(workers, concurrency, duration_s)


def _loop(request: Request, worker: _Worker, measure_from: float, stop_at: float) -> None:
    while (began := time.perf_counter()) < stop_at:
        try:
            request()
        except Exception as error:  # every failure is counted and the first one kept
            if began >= measure_from:
                worker.failures += 1
                worker.first_error = worker.first_error or f"{type(error).__name__}: {error}"
            continue
        if began >= measure_from:
            worker.latencies.append(time.perf_counter() - began)


def _summarise(workers: list[_Worker], concurrency: int, duration_s: float) -> LoadResult:
    latencies = np.array([value for worker in workers for value in worker.latencies]) * 1000.0
    failures = sum(worker.failures for worker in workers)
    errors = [worker.first_error for worker in workers if worker.first_error]

    def percentile(q: float) -> float:
        return float(np.percentile(latencies, q)) if latencies.size else float("nan")

    return LoadResult(
        concurrency=concurrency,
        duration_s=duration_s,
        requests=int(latencies.size),
        failures=failures,
        throughput_rps=latencies.size / duration_s,
        p50_ms=percentile(50),
        p95_ms=percentile(95),
        p99_ms=percentile(99),
        first_error=errors[0] if errors else "",
    )
