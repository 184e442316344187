"""Locust master and workers on this machine, for `maas bench --workers N`.

The driver (`maas.benchmarks.locust_run`) holds Locust's master runner; each worker is a process
of its own, `python -m maas.benchmarks.locust_distributed CONFIG PORT INDEX`, that connects to it
on loopback and runs its share of the users. The master keeps the windows exact with custom
messages: it shuts every worker's gate and waits until each has answered with nothing in flight
before it reads the server's statistics, and at a window's end each worker drains and sends its
raw samples, which the master merges. Each worker flushes Locust's own counters to the master
before it answers, so the master's counters cover exactly the window too.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from typing import Any

from locust import events
from locust.env import Environment

from maas.benchmarks import locust_users as users
from maas.benchmarks.load_test import Level
from maas.benchmarks.pacing import LoadConfig
from maas.benchmarks.window import Recorder, Window, merge

import gevent  # isort: skip  (after locust, which patches the standard library for it)
import gevent.event  # isort: skip

WORKER_START_TIMEOUT_S = 120.0  # a worker builds its payloads before it connects
REPLY_TIMEOUT_S = 150.0  # a drain may take up to locust_users' 120 s
QUIT_TIMEOUT_S = 15.0

# master → workers
WARM, DRAIN, OPEN, CLOSE = "maas_warm", "maas_drain", "maas_open", "maas_close"
# workers → master
DRAINED, WINDOW = "maas_drained", "maas_window"


def gate_data(level: Level) -> dict[str, Any]:
    """What a worker needs to open its gate: the level's rate and user count (for its share)."""
    return {"rate": level.rate, "users": level.users}


class WorkerFleet:
    """Locust's master runner in this process, driving `count` worker processes."""

    def __init__(self, environment: Environment, config: dict[str, Any], count: int) -> None:
        self.environment = environment
        self.runner = environment.create_master_runner("127.0.0.1", 0)
        self.count = count
        self.replies: dict[str, Any] = {}
        self.answered = gevent.event.Event()
        self.windows: list[Window] = []
        self.cpu_at_open = 0.0
        for kind in (DRAINED, WINDOW):
            self.runner.register_message(kind, self._on_reply)
        port = self.runner.server.port
        self.processes = [spawn_worker(config, port, index) for index in range(count)]
        try:
            self._wait_for_workers()
        except BaseException:
            for process in self.processes:
                process.kill()
            self.runner.quit()
            raise

    def _on_reply(self, msg: Any, **_: Any) -> None:
        self.replies[msg.node_id] = msg.data
        if len(self.replies) >= self.count:
            self.answered.set()

    def _wait_for_workers(self) -> None:
        deadline = time.perf_counter() + WORKER_START_TIMEOUT_S
        while self.runner.worker_count < self.count:
            self._check_alive()
            if time.perf_counter() > deadline:
                raise RuntimeError(
                    f"{self.runner.worker_count} of {self.count} Locust workers connected "
                    f"within {WORKER_START_TIMEOUT_S:.0f} s"
                )
            gevent.sleep(0.05)

    def _check_alive(self) -> None:
        """Raise if a worker process has exited."""
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"a Locust worker exited with code {process.returncode}")

    def start_users(self, level: Level) -> None:
        """Spread the level's users over the workers and wait until every worker has them."""
        self.runner.start(level.users, spawn_rate=min(100.0, level.users * 10.0))
        deadline = time.perf_counter() + 120.0
        while self.runner.user_count != level.users and time.perf_counter() < deadline:
            gevent.sleep(0.05)

    def warm(self, level: Level) -> None:
        """Let calls through at every worker, unmeasured."""
        self.runner.send_message(WARM, gate_data(level))

    def drain(self) -> None:
        """Shut every worker's gate; return once each has nothing in flight."""
        self._ask(DRAIN)

    def open(self, level: Level) -> None:
        """Start a window: every worker records, then lets calls through."""
        self.environment.stats.reset_all()
        self.cpu_at_open = time.process_time()
        self.runner.send_message(OPEN, gate_data(level))

    def close(self) -> Window:
        """Drain every worker and merge their windows."""
        self.windows = [Window.from_message(reply) for reply in self._ask(CLOSE)]
        merged = merge(self.windows)
        total = self.environment.stats.total  # the workers flushed theirs before answering
        merged.locust_requests, merged.locust_failures = total.num_requests, total.num_failures
        merged.cpu_s += time.process_time() - self.cpu_at_open
        return merged

    def progress(self) -> str:
        """Each worker's successful calls in the last window, and since it started."""
        window = " + ".join(str(w.requests) for w in self.windows)
        run = " + ".join(str(w.run_calls) for w in self.windows)
        return f"  per worker: {window} ok in the window, {run} ok since start"

    def _ask(self, kind: str) -> list[Any]:
        """Send kind to every worker; their replies in worker order."""
        self.replies.clear()
        self.answered.clear()
        self.runner.send_message(kind, {})
        deadline = time.perf_counter() + REPLY_TIMEOUT_S
        while not self.answered.wait(1.0):
            self._check_alive()
            if time.perf_counter() > deadline:
                raise RuntimeError(
                    f"{self.count - len(self.replies)} of {self.count} Locust workers "
                    f"did not answer {kind} within {REPLY_TIMEOUT_S:.0f} s"
                )
        ordered = sorted(self.replies, key=self.runner.get_worker_index)
        return [self.replies[node] for node in ordered]

    def quit(self) -> None:
        """Stop the workers and wait for their processes."""
        self.runner.quit()
        for process in self.processes:
            try:
                process.wait(timeout=QUIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def spawn_worker(config: dict[str, Any], port: int, index: int) -> subprocess.Popen[bytes]:
    """A worker process connecting to the master on loopback; its stderr is the driver's."""
    module = "maas.benchmarks.locust_distributed"
    command = [sys.executable, "-m", module, json.dumps(config), str(port), str(index)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


# --- the worker process --------------------------------------------------------------------


class WorkerWindows:
    """A worker's side of the windows: its gate, its share of the schedule, its samples."""

    def __init__(self, environment: Environment) -> None:
        assert environment.runner is not None
        self.runner: Any = environment.runner
        self.recorder = Recorder()
        self.cpu_at_open = 0.0
        environment.events.request.add_listener(self.recorder.on_request)
        self.runner.register_message(WARM, self.on_warm)
        self.runner.register_message(DRAIN, self.on_drain, concurrent=True)
        self.runner.register_message(OPEN, self.on_open)
        self.runner.register_message(CLOSE, self.on_close, concurrent=True)

    def _let_through(self, data: dict[str, Any]) -> None:
        """Open the gate at this worker's share of the offered rate (its share of the users)."""
        share = self.runner.user_count / data["users"] if data["users"] else 0.0
        users.SCHEDULE.restart(data["rate"] * share)
        users.TRAFFIC.open.set()

    def on_warm(self, msg: Any, **_: Any) -> None:
        """Calls through, unmeasured."""
        self._let_through(msg.data)

    def on_drain(self, **_: Any) -> None:
        """Gate shut and nothing in flight; then tell the master."""
        users.TRAFFIC.drain()
        self._answer(DRAINED, {})

    def on_open(self, msg: Any, **_: Any) -> None:
        """Record, then let calls through."""
        self.recorder.restart()
        self.cpu_at_open = time.process_time()
        self._let_through(msg.data)

    def on_close(self, **_: Any) -> None:
        """Drain, stop recording, and send the window's raw samples."""
        users.TRAFFIC.drain()
        window = self.recorder.stop()
        window.cpu_s = time.process_time() - self.cpu_at_open
        self._answer(WINDOW, window.as_message())

    def _answer(self, kind: str, data: dict[str, Any]) -> None:
        # Locust's counters go first, on the same ordered connection: when the master has
        # every answer, its own counters hold every call up to them.
        self.runner._send_stats()
        self.runner.send_message(kind, data)


def worker_main(argv: list[str]) -> int:
    """Run one worker: argv is [program, CONFIG-JSON, MASTER-PORT, INDEX]."""
    logging.basicConfig(level=logging.WARNING)
    config = LoadConfig(**json.loads(argv[1]))
    config.seed += int(argv[3])  # Poisson arrivals independent across workers
    users.configure(config)
    users.workload()  # build the payloads before connecting: no user waits for them
    users.TRAFFIC.open.clear()  # no call before the master's first warm-up
    environment = Environment(user_classes=[users.TritonUser], events=events)
    environment.create_worker_runner("127.0.0.1", int(argv[2]))
    WorkerWindows(environment)
    assert environment.runner is not None
    environment.runner.greenlet.join()
    return 0


if __name__ == "__main__":
    code = worker_main(sys.argv)
    sys.stderr.flush()
    os._exit(code)  # as the driver does: a thread Locust's quit leaves behind can block exit
