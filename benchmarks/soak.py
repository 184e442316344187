"""Soak: mixed traffic to every model over both protocols for a long time, watching for drift.

Workers call the models round-robin (real inputs from `workloads`, no retries, so every failure
counts); a sampler records per window the requests, failures, p50/p99, the server's resident
memory (tritonserver with its Python stubs, and the gateway) and /dev/shm. The report says
whether anything failed, how p99 drifted and whether memory stayed flat, with a plot.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from maas.base.errors import MaasError, WorkloadError
from maas.base.triton.repository import ModelRepository
from maas.benchmarks.bench import listener_pid
from maas.benchmarks.process_tree import tree_rss_mib
from maas.benchmarks.report import markdown_table, write_pair
from maas.benchmarks.workloads import Workload, build_workload
from maas.clients import NO_RETRIES, ModelClient, Protocol
from maas.serve import local_options, serve
from maas.serve.stubs import SHM_DIR

log = logging.getLogger(__name__)

PROTOCOLS: tuple[Protocol, ...] = ("http", "grpc")
FLAT_GROWTH = 0.05  # memory growth over the run, relative to after warm-up, called flat


@dataclass(frozen=True)
class SoakOptions:
    """A `maas soak` run; without URLs it starts its own `maas serve` stack."""

    repository: Path = Path("model_repository")
    duration_s: float = 600.0
    users: int = 4
    interval_s: float = 10.0
    out: Path = Path("benchmarks/results/soak")
    http_url: str = ""
    grpc_url: str = ""
    models: tuple[str, ...] = ()  # empty: every model of the repository


@dataclass
class Call:
    """One finished call."""

    at: float
    model: str
    protocol: str
    latency_ms: float
    error: str = ""


@dataclass(frozen=True)
class Sample:
    """One window of the run."""

    t_s: float
    requests: int
    failures: int
    p50_ms: float
    p99_ms: float
    triton_rss_mib: float
    front_rss_mib: float
    shm_used_mib: float
    shm_files: int


@dataclass
class SoakResult:
    """Every window, every failure, and the calls per model and protocol."""

    options: SoakOptions
    samples: list[Sample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)  # "model/protocol" -> calls
    # "model/protocol" -> latencies (ms) of successful calls after the warm-up fifth
    latencies: dict[str, list[float]] = field(default_factory=dict)

    def tail_ratios(self) -> dict[str, tuple[float, float]]:
        """p50 and p99 (ms) of each model and protocol after warm-up."""
        return {
            pair: (float(np.percentile(values, 50)), float(np.percentile(values, 99)))
            for pair, values in sorted(self.latencies.items())
            if values
        }

    @property
    def requests(self) -> int:
        """Calls made in all windows."""
        return sum(sample.requests for sample in self.samples)

    def settled(self) -> list[Sample]:
        """Samples after the first fifth of the run (warm-up: caches, allocator pools)."""
        start = self.samples[0].t_s + (self.samples[-1].t_s - self.samples[0].t_s) / 5
        return [sample for sample in self.samples if sample.t_s >= start] or self.samples

    def growth(self, field_name: str) -> float:
        """Relative change of a memory field from the settled start to the end."""
        settled = self.settled()
        first = getattr(settled[0], field_name)
        return float((getattr(settled[-1], field_name) - first) / first) if first else 0.0

    def p99_drift(self) -> float:
        """Last settled window's p99 over the first's."""
        settled = [sample for sample in self.settled() if sample.requests]
        return settled[-1].p99_ms / settled[0].p99_ms if settled else float("nan")


def front_master(pid: int) -> int:
    """The gateway's main process, from any of its processes (a parent of the same name)."""
    import psutil

    try:
        process = psutil.Process(pid)
        parent = process.parent()
        if parent is not None and parent.name() == process.name():
            return int(parent.pid)
    except psutil.Error:
        return 0
    return pid


def shm_usage() -> tuple[float, int]:
    """MiB used in /dev/shm and how many files it holds."""
    if not SHM_DIR.is_dir():
        return 0.0, 0
    return shutil.disk_usage(SHM_DIR).used / 2**20, sum(1 for _ in SHM_DIR.iterdir())


def soak_workloads(repository: ModelRepository, models: tuple[str, ...]) -> list[Workload]:
    """A workload per model (all that real inputs can be built for if none are named)."""
    if models:
        return [build_workload(repository, model) for model in models]
    workloads = []
    for model in repository.model_names():
        try:
            workloads.append(build_workload(repository, model))
        except WorkloadError:
            continue
    if not workloads:
        raise MaasError(f"no model in {repository.root} to soak")
    return workloads


class Traffic:
    """Worker threads calling every (model, protocol) pair in turn, recording each call."""

    def __init__(self, workloads: list[Workload], urls: dict[str, str], users: int) -> None:
        self.pairs = [(w, protocol) for w in workloads for protocol in PROTOCOLS]
        self.urls = urls
        self.users = users
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the workers."""
        for worker in range(self.users):
            thread = threading.Thread(target=self._run, args=(worker,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Let each worker finish its call, then join them."""
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def drain(self) -> list[Call]:
        """The calls finished since the last drain."""
        with self._lock:
            calls, self.calls = self.calls, []
        return calls

    def _run(self, worker: int) -> None:
        clients: dict[tuple[str, str], ModelClient] = {}
        turn = worker
        try:
            while not self._stop.is_set():
                workload, protocol = self.pairs[turn % len(self.pairs)]
                key = (workload.model, protocol)
                if key not in clients:
                    url = self.urls[protocol]
                    clients[key] = ModelClient(
                        workload.model, url=url, protocol=protocol, retry=NO_RETRIES
                    )
                inputs = workload.requests[turn % len(workload.requests)]
                self._record(clients[key], workload.model, protocol, inputs)
                turn += 1
        finally:
            for client in clients.values():
                client.close()

    def _record(
        self, client: ModelClient, model: str, protocol: str, inputs: dict[str, np.ndarray]
    ) -> None:
        began = time.perf_counter()
        error = ""
        try:
            client.infer(inputs)
        except MaasError as failure:
            error = f"{type(failure).__name__}: {failure}"
        call = Call(time.monotonic(), model, protocol, (time.perf_counter() - began) * 1e3, error)
        with self._lock:
            self.calls.append(call)


def window_sample(t_s: float, calls: list[Call], pids: tuple[int, int]) -> Sample:
    """A sample from one window's calls and the processes' state now."""
    latencies = [call.latency_ms for call in calls if not call.error]
    p50, p99 = (
        (float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99)))
        if latencies
        else (0.0, 0.0)
    )
    shm_mib, shm_files = shm_usage()
    return Sample(
        t_s=round(t_s, 2),
        requests=len(calls),
        failures=sum(1 for call in calls if call.error),
        p50_ms=round(p50, 3),
        p99_ms=round(p99, 3),
        triton_rss_mib=round(tree_rss_mib(pids[0]), 1),
        front_rss_mib=round(tree_rss_mib(pids[1]), 1),
        shm_used_mib=round(shm_mib, 2),
        shm_files=shm_files,
    )


def soak(options: SoakOptions, urls: dict[str, str], pids: tuple[int, int]) -> SoakResult:
    """Run the traffic for the duration, sampling every interval; pids: Triton, gateway."""
    workloads = soak_workloads(ModelRepository(options.repository), options.models)
    result = SoakResult(options)
    traffic = Traffic(workloads, urls, options.users)
    began = time.monotonic()
    result.samples.append(window_sample(0.0, [], pids))
    traffic.start()
    try:
        while (elapsed := time.monotonic() - began) < options.duration_s:
            time.sleep(min(options.interval_s, options.duration_s - elapsed))
            calls = traffic.drain()
            sample = window_sample(time.monotonic() - began, calls, pids)
            result.samples.append(sample)
            record_calls(result, calls, settled=elapsed >= options.duration_s / 5)
            log.info(
                "%6.0f s: %d calls, %d failed, p99 %.1f ms, server %.0f MiB, /dev/shm %.1f MiB",
                sample.t_s, sample.requests, sample.failures, sample.p99_ms,
                sample.triton_rss_mib, sample.shm_used_mib,
            )  # fmt: skip
    finally:
        traffic.stop()
    calls = traffic.drain()  # the calls that were in flight at the end
    record_calls(result, calls)
    result.samples.append(window_sample(time.monotonic() - began, calls, pids))
    return result


def record_calls(result: SoakResult, calls: list[Call], settled: bool = True) -> None:
    """Count calls per pair, keep the failures' messages and, once settled, the latencies."""
    for call in calls:
        key = f"{call.model}/{call.protocol}"
        result.calls[key] = result.calls.get(key, 0) + 1
        if call.error:
            result.failures.append(f"{key} at {call.at:.1f}: {call.error}")
        elif settled:
            result.latencies.setdefault(key, []).append(call.latency_ms)


@contextmanager
def soak_server(options: SoakOptions) -> Iterator[tuple[dict[str, str], tuple[int, int]]]:
    """URLs, and the Triton and gateway processes whose memory to follow.

    The given server's, or a `maas serve` stack of our own on free ports. Behind a gateway the
    public ports are the gateway's; Triton is then the one tritonserver on this machine, if any.
    """
    if options.http_url and options.grpc_url:
        urls = {"http": options.http_url, "grpc": options.grpc_url}
        front = front_master(listener_pid(urls["http"]))
        triton = listener_pid(urls["grpc"])
        if triton and process_name(triton) != "tritonserver":
            triton = only_tritonserver()
        yield urls, (triton, front if front != triton else 0)
        return
    with serve(local_options(options.repository)) as stack:
        gateway = stack.gateway.pid if stack.gateway is not None else None
        yield (
            {"http": stack.http_url, "grpc": stack.grpc_url},
            (
                stack.triton.pid or 0,
                gateway or 0,
            ),
        )


def process_name(pid: int) -> str:
    """A process's name, or empty."""
    import psutil

    try:
        return str(psutil.Process(pid).name())
    except psutil.Error:
        return ""


def only_tritonserver() -> int:
    """The pid of the one tritonserver process here, or 0 if there are none or several."""
    import psutil

    found = [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "tritonserver"]
    return found[0] if len(found) == 1 else 0


def run_soak(options: SoakOptions) -> SoakResult:
    """Serve (or use the given server), soak, return the result."""
    with soak_server(options) as (urls, pids):
        return soak(options, urls, pids)


def plot_soak(result: SoakResult, path: Path) -> None:
    """Latency, memory and /dev/shm over time, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = [sample for sample in result.samples if sample.requests] or result.samples
    minutes = [sample.t_s / 60 for sample in samples]
    figure, (latency, memory, shm) = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    latency.plot(minutes, [s.p50_ms for s in samples], label="p50")
    latency.plot(minutes, [s.p99_ms for s in samples], label="p99")
    latency.set_ylabel("latency per window (ms)")
    latency.legend()
    memory.plot(minutes, [s.triton_rss_mib for s in samples], label="tritonserver + stubs")
    memory.plot(minutes, [s.front_rss_mib for s in samples], label="gateway")
    memory.set_ylabel("resident memory (MiB)")
    memory.legend()
    shm.plot(minutes, [s.shm_used_mib for s in samples])
    shm.set_ylabel("/dev/shm used (MiB)")
    shm.set_xlabel("minutes")
    figure.suptitle(f"soak: {result.requests} calls, {len(result.failures)} failed")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def verdict(result: SoakResult) -> list[tuple[str, str, bool]]:
    """(check, measured, passed) for the report and the exit code."""
    triton = result.growth("triton_rss_mib")
    front = result.growth("front_rss_mib")
    first, last = result.settled()[0], result.settled()[-1]
    shm_change = last.shm_used_mib - first.shm_used_mib
    shm_growth = result.growth("shm_used_mib")
    return [
        ("no failed request", f"{len(result.failures)} of {result.requests}", not result.failures),
        (
            f"server memory flat (< {FLAT_GROWTH:.0%} growth after warm-up)",
            f"tritonserver + stubs {first.triton_rss_mib:.0f} → {last.triton_rss_mib:.0f} MiB "
            f"({triton:+.1%}); front {first.front_rss_mib:.0f} → {last.front_rss_mib:.0f} MiB "
            f"({front:+.1%})",
            triton < FLAT_GROWTH and front < FLAT_GROWTH,
        ),
        (
            # Python-backend regions grow in 1 MiB steps to their working size, then stay.
            f"/dev/shm flat (no new files, < {FLAT_GROWTH:.0%} growth after warm-up)",
            f"{first.shm_used_mib:.1f} → {last.shm_used_mib:.1f} MiB ({shm_change:+.1f}), "
            f"{first.shm_files} → {last.shm_files} files",
            shm_growth < FLAT_GROWTH and last.shm_files <= first.shm_files,
        ),
    ]


def soak_markdown(result: SoakResult, command: str) -> str:
    """The report's text."""
    options = result.options
    checks = markdown_table(
        ("check", "measured", "passed"),
        [(name, measured, "yes" if ok else "**no**") for name, measured, ok in verdict(result)],
    )
    tails = result.tail_ratios()
    per_pair = markdown_table(
        ("model/protocol", "calls", "p50 ms", "p99 ms", "p99 / p50 (goal ≤ 3)"),
        [(pair, result.calls[pair], *tail_cells(tails.get(pair))) for pair in sorted(result.calls)],
    )
    settled = [sample for sample in result.settled() if sample.requests]
    p99s = [sample.p99_ms for sample in settled]
    rate = result.requests / max(result.samples[-1].t_s, 1e-9)
    failures = "\n".join(f"- {line}" for line in result.failures[:20]) or "none"
    return f"""# Soak: {options.duration_s / 60:.1f} minutes of mixed traffic

`{command}`: {options.users} workers calling every model over HTTP and gRPC (through the gateway)
in turn, no retries; {result.requests} calls ({rate:.1f}/s); samples every
{options.interval_s:.0f} s.

{checks}

p99 per window after warm-up: median {statistics.median(p99s) if p99s else 0:.1f} ms, first
{p99s[0] if p99s else 0:.1f} ms, last {p99s[-1] if p99s else 0:.1f} ms (drift
{result.p99_drift():.2f}×).

![soak](soak.png)

## Calls and latency per model and protocol (after the first fifth of the run)
{per_pair}

## Failures
{failures}
"""


def tail_cells(tail: tuple[float, float] | None) -> tuple[str, str, str]:
    """p50, p99 and their ratio as report cells."""
    if tail is None:
        return ("–", "–", "–")
    p50, p99 = tail
    ratio = p99 / p50 if p50 else float("inf")
    return (f"{p50:.2f}", f"{p99:.2f}", f"{ratio:.2f}" + ("" if ratio <= 3 else " **over**"))


def write_soak_report(result: SoakResult, command: str) -> Path:
    """report.md, report.json (the samples) and soak.png in the output folder."""
    out = result.options.out
    out.mkdir(parents=True, exist_ok=True)
    plot_soak(result, out / "soak.png")
    rows = [asdict(sample) for sample in result.samples]
    return write_pair(out, "report", rows, soak_markdown(result, command))


def passed(result: SoakResult) -> bool:
    """Whether every check passed."""
    return all(ok for _, _, ok in verdict(result))
