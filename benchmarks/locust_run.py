"""Headless Locust driver: `python -m maas.benchmarks.locust_run SPEC.json RESULTS.json`.

For each level: start the users, warm up, then measure one window. A window opens and closes
with the traffic gate shut and no call in flight, with the server's statistics read at both
edges, so every request counted by Locust is counted by Triton and the other way round.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment

from maas.benchmarks import locust_users as users
from maas.benchmarks.load_test import Level, LevelResult, LoadSpec, summarise_window
from maas.benchmarks.pacing import LoadConfig
from maas.benchmarks.process_tree import tree_cpu_s, tree_rss_mib
from maas.benchmarks.server_stats import Snapshot, breakdown, fetch_snapshot

import gevent  # isort: skip  (after locust, which patches the standard library for it)

DRAIN_TIMEOUT_S = 120.0


class Recorder:
    """Collects Locust's request events while a window is open."""

    def __init__(self) -> None:
        self.recording = False
        self.latencies: list[float] = []
        self.late: list[float] = []
        self.failures = 0
        self.delayed = 0
        self.errors: Counter[str] = Counter()

    def on_request(
        self, response_time: float, exception: BaseException | None, context: Any, **_: Any
    ) -> None:
        """Locust's events.request listener."""
        if not self.recording:
            return
        context = context or {}
        self.late.append(float(context.get("late_ms", 0.0)))
        self.delayed += bool(context.get("delayed", False))
        if exception is None:
            self.latencies.append(response_time)
        else:
            self.failures += 1
            self.errors[f"{type(exception).__name__}: {exception}"[:300]] += 1


def drain() -> None:
    """Shut the gate and wait until no call is in flight."""
    users.TRAFFIC.open.clear()
    deadline = time.perf_counter() + DRAIN_TIMEOUT_S
    while users.TRAFFIC.in_flight and time.perf_counter() < deadline:
        gevent.sleep(0.001)


def snapshot(spec: LoadSpec) -> Snapshot:
    """The server's counters once they stop moving, or nothing without a Triton server.

    Triton counts a request when it releases it, just after sending the response, so a read
    right after the last response may miss it: read until two reads agree.
    """
    if not spec.stats_url:
        return {}
    current = fetch_snapshot(spec.stats_url)
    for _ in range(20):
        gevent.sleep(0.02)
        latest = fetch_snapshot(spec.stats_url)
        if latest == current:
            break
        current = latest
    return current


def start_users(environment: Environment, level: Level) -> None:
    """Bring the user count to the level's and wait until every user has started."""
    assert environment.runner is not None
    environment.runner.start(level.users, spawn_rate=min(100.0, level.users * 10.0))
    deadline = time.perf_counter() + 120.0
    while environment.runner.user_count < level.users and time.perf_counter() < deadline:
        gevent.sleep(0.05)


def measure(environment: Environment, spec: LoadSpec, level: Level) -> LevelResult:
    """Warm up, then one clean window at this level."""
    users.TRAFFIC.open.set()
    users.SCHEDULE.restart(level.rate)
    gevent.sleep(spec.warmup_s)
    drain()
    before = snapshot(spec)
    cpu_before = (time.process_time(), server_cpu_s(spec))
    memory = PeakMemory(tuple(spec.server_pids))
    environment.stats.reset_all()
    recorder = Recorder()
    environment.events.request.add_listener(recorder.on_request)
    recorder.recording = True
    users.SCHEDULE.restart(level.rate)
    opened = time.perf_counter()
    users.TRAFFIC.open.set()
    gevent.sleep(spec.duration_s)
    send_window = time.perf_counter() - opened
    drain()
    elapsed = time.perf_counter() - opened
    client_cpu = time.process_time() - cpu_before[0]
    server_cpu = server_cpu_s(spec) - cpu_before[1]
    peak_rss_mib = memory.stop()
    recorder.recording = False
    environment.events.request.remove_listener(recorder.on_request)
    after = snapshot(spec)
    total = environment.stats.total
    result = summarise_window(
        level,
        elapsed,
        recorder.latencies,
        recorder.late,
        recorder.failures,
        recorder.errors,
        (total.num_requests, total.num_failures),
        recorder.delayed,
    )
    result.server = breakdown(before, after)
    result.send_window_s = send_window
    calls = max(1, result.requests + result.failures)
    result.client_cpu_ms = client_cpu * 1000.0 / calls
    result.server_cpu_ms = server_cpu * 1000.0 / calls
    result.server_peak_rss_mib = peak_rss_mib
    if not result.requests and not result.failures:
        raise RuntimeError(f"no call was made at {level.label}: {first_exception(environment)}")
    return result  # the gate stays shut: users stop between levels with nothing in flight


def server_cpu_s(spec: LoadSpec) -> float:
    """CPU seconds the server's process trees have used so far."""
    return sum(tree_cpu_s(pid) for pid in spec.server_pids)


class PeakMemory:
    """Samples the server trees' resident memory in a greenlet until stopped."""

    INTERVAL_S = 0.25

    def __init__(self, pids: tuple[int, ...]) -> None:
        self.pids = pids
        self.peak_mib = 0.0
        self.sampler = gevent.spawn(self._sample)

    def _sample(self) -> None:
        while self.pids:
            self.peak_mib = max(self.peak_mib, sum(tree_rss_mib(pid) for pid in self.pids))
            gevent.sleep(self.INTERVAL_S)

    def stop(self) -> float:
        """Stop sampling; the highest resident MiB seen (0 without pids)."""
        self.sampler.kill(block=True)
        return self.peak_mib


def first_exception(environment: Environment) -> str:
    """The first error Locust caught outside a call (in on_start, say), or a hint."""
    assert environment.runner is not None
    for entry in environment.runner.exceptions.values():
        return str(entry.get("msg", entry))
    return "the users made no call (is the server up?)"


def run(spec: LoadSpec) -> list[LevelResult]:
    """Every level of the spec, in order, with one set of users grown or shrunk between."""
    users.configure(LoadConfig(**spec.config))
    users.workload()  # build the payloads before any user starts
    environment = Environment(user_classes=[users.TritonUser], events=events)
    environment.create_local_runner()
    results = []
    try:
        for level in spec.levels:
            start_users(environment, level)
            result = measure(environment, spec, level)
            if spec.progress:
                print(f"{spec.config['model']} {result.summary()}", file=sys.stderr, flush=True)
            results.append(result)
    finally:
        assert environment.runner is not None
        environment.runner.quit()
    return results


def load_spec(path: Path) -> LoadSpec:
    """Read the spec load_test.run_load_test wrote."""
    raw = json.loads(path.read_text())
    raw["levels"] = tuple(Level(**level) for level in raw["levels"])
    return LoadSpec(**raw)


def main(argv: list[str]) -> int:
    """Run the spec at argv[1]; write the results to argv[2]."""
    logging.basicConfig(level=logging.WARNING)
    spec = load_spec(Path(argv[1]))
    try:
        results = run(spec)
    except Exception as error:  # the parent prints this line as the reason
        print(f"{type(error).__name__}: {error}")
        return 1
    Path(argv[2]).write_text(json.dumps([asdict(result) for result in results]))
    return 0


def exit_now(code: int) -> None:
    """Leave without the interpreter's shutdown.

    Seen here in 2 of 4 demo runs: with the results written, the process slept forever at exit,
    joined to a gRPC or gevent thread that Locust's quit leaves behind. Nothing is left to do
    once the results are on disk, so flush and leave.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main(sys.argv))
