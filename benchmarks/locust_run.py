"""Headless Locust driver: `python -m maas.benchmarks.locust_run SPEC.json RESULTS.json`.

For each level: start the users, warm up, then measure one window. A window opens and closes
with the traffic gate shut and no call in flight, with the server's statistics read at both
edges, so every request counted by Locust is counted by Triton and the other way round.
With `workers` > 1 in the spec, this process is Locust's master and the users run in worker
processes (`maas.benchmarks.locust_distributed`); the windows are the same, gated from here.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

from locust import events
from locust.env import Environment

from maas.benchmarks import locust_users as users
from maas.benchmarks.load_test import Level, LevelResult, LoadSpec, summarise_window
from maas.benchmarks.locust_distributed import WorkerFleet
from maas.benchmarks.pacing import LoadConfig
from maas.benchmarks.process_tree import tree_cpu_s, tree_rss_mib
from maas.benchmarks.server_stats import Snapshot, breakdown, fetch_snapshot
from maas.benchmarks.window import Recorder, Window

import gevent  # isort: skip  (after locust, which patches the standard library for it)

DRAIN_TIMEOUT_S = 120.0


class Fleet(Protocol):
    """The users of a run: in this process, or in worker processes driven from here."""

    def start_users(self, level: Level) -> None:
        """Bring the user count to the level's and wait until every user has started."""
        ...

    def warm(self, level: Level) -> None:
        """Let calls through, unmeasured, at the level's rate."""
        ...

    def drain(self) -> None:
        """Shut the gate; return once no call is in flight."""
        ...

    def open(self, level: Level) -> None:
        """Start recording, then let calls through."""
        ...

    def close(self) -> Window:
        """Shut the gate, wait until no call is in flight, and return what was recorded."""
        ...

    def progress(self) -> str:
        """Lines to add to a level's progress line ('' for none)."""
        ...

    def quit(self) -> None:
        """Stop every user."""
        ...


class LocalFleet:
    """Every user in this process: Locust's local runner."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.runner = environment.create_local_runner()
        self.recorder = Recorder()
        self.cpu_at_open = 0.0
        environment.events.request.add_listener(self.recorder.on_request)

    def start_users(self, level: Level) -> None:
        """Bring the user count to the level's and wait until every user has started."""
        self.runner.start(level.users, spawn_rate=min(100.0, level.users * 10.0))
        deadline = time.perf_counter() + 120.0
        while self.runner.user_count < level.users and time.perf_counter() < deadline:
            gevent.sleep(0.05)

    def warm(self, level: Level) -> None:
        """Let calls through, unmeasured."""
        users.TRAFFIC.open.set()
        users.SCHEDULE.restart(level.rate)

    def drain(self) -> None:
        """Shut the gate and wait until no call is in flight."""
        users.TRAFFIC.drain(DRAIN_TIMEOUT_S)

    def open(self, level: Level) -> None:
        """Reset Locust's counters, record, and let calls through."""
        self.cpu_at_open = time.process_time()
        self.environment.stats.reset_all()
        self.recorder.restart()
        users.SCHEDULE.restart(level.rate)
        users.TRAFFIC.open.set()

    def close(self) -> Window:
        """Drain; the window with Locust's counters and this process's CPU time."""
        self.drain()
        window = self.recorder.stop()
        window.cpu_s = time.process_time() - self.cpu_at_open
        total = self.environment.stats.total
        window.locust_requests, window.locust_failures = total.num_requests, total.num_failures
        return window

    def progress(self) -> str:
        """Nothing beyond the level's line."""
        return ""

    def quit(self) -> None:
        """Stop the users."""
        self.runner.quit()


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


def measure(fleet: Fleet, spec: LoadSpec, level: Level) -> LevelResult:
    """Warm up, then one clean window at this level."""
    fleet.warm(level)
    gevent.sleep(spec.warmup_s)
    fleet.drain()
    before = snapshot(spec)
    server_cpu_before = server_cpu_s(spec)
    memory = PeakMemory(tuple(spec.server_pids))
    opened = time.perf_counter()
    fleet.open(level)
    gevent.sleep(spec.duration_s)
    send_window = time.perf_counter() - opened
    window = fleet.close()
    elapsed = time.perf_counter() - opened
    server_cpu = server_cpu_s(spec) - server_cpu_before
    peak_rss_mib = memory.stop()
    after = snapshot(spec)
    result = summarise_window(
        level,
        elapsed,
        window.latencies_ms,
        window.late_ms,
        window.failures,
        window.errors,
        (window.locust_requests, window.locust_failures),
        window.delayed,
    )
    result.server = breakdown(before, after)
    result.send_window_s = send_window
    calls = max(1, result.requests + result.failures)
    result.client_cpu_ms = window.cpu_s * 1000.0 / calls
    result.server_cpu_ms = server_cpu * 1000.0 / calls
    result.server_peak_rss_mib = peak_rss_mib
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


def make_fleet(spec: LoadSpec) -> tuple[Environment, Fleet]:
    """Users in this process (one worker), or Locust's master here and workers of their own."""
    environment = Environment(user_classes=[users.TritonUser], events=events)
    if spec.workers > 1:
        return environment, WorkerFleet(environment, spec.config, spec.workers)
    users.configure(LoadConfig(**spec.config))
    users.workload()  # build the payloads before any user starts
    return environment, LocalFleet(environment)


def run(spec: LoadSpec) -> list[LevelResult]:
    """Every level of the spec, in order, with one set of users grown or shrunk between."""
    environment, fleet = make_fleet(spec)
    results = []
    try:
        for level in spec.levels:
            fleet.start_users(level)
            result = measure(fleet, spec, level)
            if not result.requests and not result.failures:
                raise RuntimeError(
                    f"no call was made at {level.label}: {first_exception(environment)}"
                )
            if spec.progress:
                lines = [f"{spec.config['model']} {result.summary()}", fleet.progress()]
                print("\n".join(line for line in lines if line), file=sys.stderr, flush=True)
            results.append(result)
    finally:
        fleet.quit()
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
