"""`maas bench-peers`: maas against BentoML, Ray Serve and TorchServe on the same artifacts.

For each task (ResNet-50 on JPEG bytes and on tensors, MiniLM on raw sentences) every system
serves the artifact maas serves, alone on the machine, started and stopped one at a time, under
one Locust load shape: closed loop at each user count, then open loop (Poisson arrivals) at
fixed offered rates. maas is called as its users call it (gRPC through the gateway); each peer
through its own HTTP API. Every peer setting is measured; the best (highest saturation
throughput) is the one compared.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from maas.base.errors import BenchmarkError
from maas.base.triton.repository import ModelRepository
from maas.serve import local_options, serve

from .baselines import naive_service
from .bench import listener_pid
from .fingerprint import fingerprint
from .load_test import Level, LevelResult, LoadSpec, result_from_dict, run_load_test
from .peers.launch import LAUNCHERS, PeerLauncher, PeerSetting, running
from .peers.tasks import PEERS, TASKS, PeerTask
from .peers.work import PeerEnvironment

log = logging.getLogger(__name__)

RATES = {  # open loop, requests/s offered to every system alike
    "resnet50-jpeg": (15.0, 30.0),
    "resnet50-tensor": (20.0, 40.0),
    "minilm-text": (100.0, 200.0),
}
MAAS_PROTOCOLS = {"grpc": "gRPC", "http": "HTTP"}  # both through the gateway; the best compared
NAIVE_TITLE = "naive FastAPI + PyTorch"


@dataclass(frozen=True)
class PeersOptions:
    """What the peers benchmark runs and how hard."""

    repository: Path = Path("model_repository")
    out: Path = Path("benchmarks/results/peers")
    tasks: tuple[str, ...] = tuple(TASKS)
    peers: tuple[str, ...] = PEERS
    users: tuple[int, ...] = (1, 4, 16, 32)
    rates: dict[str, tuple[float, ...]] = field(default_factory=lambda: dict(RATES))
    rate_users: int = 32  # the user pool that shares an open-loop schedule
    duration_s: float = 8.0
    warmup_s: float = 3.0
    every_setting: bool = True  # False: each peer's first setting only (smoke runs)
    naive: bool = True  # the naive service as the floor, on the JPEG task
    progress: bool = True

    def levels(self, task: str) -> tuple[Level, ...]:
        """Closed loop at each user count, then the task's offered rates."""
        rates = self.rates.get(task, ())
        return (
            *(Level(users) for users in self.users),
            *(Level(self.rate_users, rate) for rate in rates),
        )

    def settings_of(self, launcher: PeerLauncher) -> tuple[PeerSetting, ...]:
        """The settings a peer is measured under: all it names, or its first (smoke runs)."""
        settings = launcher.settings()
        return settings if self.every_setting else settings[:1]

    def check(self) -> None:
        """Refuse names that are not tasks or peers."""
        for name in self.tasks:
            if name not in TASKS:
                raise BenchmarkError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
        for name in self.peers:
            if name not in LAUNCHERS:
                raise BenchmarkError(f"unknown peer {name!r}; expected one of {', '.join(PEERS)}")


@dataclass
class SystemRun:
    """One system under one setting on one task, at every level."""

    task: str
    system: str  # maas | naive | a peer's name
    title: str
    setting: str
    levels: list[LevelResult]
    chosen: bool = True  # the setting this system is compared with

    @property
    def closed(self) -> list[LevelResult]:
        """The closed-loop levels."""
        return [level for level in self.levels if not level.level.rate]

    @property
    def open_loop(self) -> list[LevelResult]:
        """The offered-rate levels."""
        return [level for level in self.levels if level.level.rate]

    def saturation(self) -> LevelResult:
        """The closed-loop level with the highest throughput."""
        return max(self.closed, key=lambda level: level.throughput_rps)

    def at(self, level: Level) -> LevelResult | None:
        """The result at one level, if it was run."""
        return next((result for result in self.levels if result.level == level), None)

    @property
    def peak_rss_mib(self) -> float:
        """The server's resident memory at its highest, over every level."""
        return max((level.server_peak_rss_mib for level in self.levels), default=0.0)


@dataclass
class PeersResult:
    """Everything the peers benchmark measured, and what it could not run."""

    runs: list[SystemRun] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    settings: dict[str, list[str]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # peer → why it did not run
    failed: list[str] = field(default_factory=list)  # a setting that did not start or finish
    machine: dict[str, object] = field(default_factory=dict)  # the fingerprint, taken with maas up

    def of_task(self, task: str, chosen_only: bool = True) -> list[SystemRun]:
        """The task's runs, the compared setting of each system by default."""
        return [run for run in self.runs if run.task == task and (run.chosen or not chosen_only)]


def save_result(result: PeersResult, path: Path) -> None:
    """Every measurement as JSON, so the report can be written again without rerunning."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(result), indent=1) + "\n")


def load_result(path: Path) -> PeersResult:
    """A result saved by save_result."""
    raw = json.loads(path.read_text())
    runs = [
        SystemRun(**{**run, "levels": [result_from_dict(level) for level in run["levels"]]})
        for run in raw.pop("runs")
    ]
    return PeersResult(runs=runs, **raw)


def run_peers(options: PeersOptions) -> PeersResult:
    """Measure maas, the naive floor and every available peer on every task, one at a time."""
    options.check()
    result = PeersResult()
    for name in options.peers:
        launcher = LAUNCHERS[name]
        reason = launcher.missing()
        if reason:
            log.warning("%s will not run: %s", launcher.title, reason)
            result.unavailable[name] = reason
        else:
            result.versions[name] = launcher.versions()
            result.settings[name] = [setting.label for setting in options.settings_of(launcher)]
    for name in options.tasks:
        task = TASKS[name]
        maas_runs = run_maas(task, options, result)
        choose_best(maas_runs)
        result.runs += maas_runs
        if options.naive and task.kind == "image":
            result.runs.append(run_naive(task, options))
        for peer in result.settings:
            runs = peer_runs(peer, task, options, result)
            choose_best(runs)
            result.runs += runs
    return result


def peer_runs(
    peer: str, task: PeerTask, options: PeersOptions, result: PeersResult
) -> list[SystemRun]:
    """The peer under each of its settings; a setting that fails is noted and skipped."""
    launcher = LAUNCHERS[peer]
    runs = []
    for setting in options.settings_of(launcher):
        try:
            runs.append(run_peer(peer, setting, task, options))
        except BenchmarkError as error:
            message = f"{launcher.title} ({setting.label}) on {task.name}: {error}"
            log.warning("%s", message)
            result.failed.append(message)
    return runs


def choose_best(runs: list[SystemRun]) -> None:
    """Mark the run with the highest saturation throughput as the one compared."""
    best = max(runs, key=lambda run: run.saturation().throughput_rps, default=None)
    for run in runs:
        run.chosen = run is best


def load(
    task: PeerTask,
    options: PeersOptions,
    url: str,
    protocol: str,
    pids: tuple[int, ...],
    stats_url: str = "",
) -> list[LevelResult]:
    """The Locust run every system gets: same levels, same inputs, same durations."""
    spec = LoadSpec(
        config={
            "model": task.maas_model,
            "url": url,
            "protocol": protocol,
            "repository": str(options.repository),
            "arrival": "poisson",
        },
        levels=options.levels(task.name),
        duration_s=options.duration_s,
        warmup_s=options.warmup_s,
        stats_url=stats_url,
        server_pids=pids,
        progress=options.progress,
    )
    return run_load_test(spec)


def run_maas(task: PeerTask, options: PeersOptions, result: PeersResult) -> list[SystemRun]:
    """`maas serve` of the task's models alone, called through its gateway over each protocol."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="maas-peers-") as scratch:
        repository = ModelRepository(options.repository)
        subset = subset_repository(repository, task.maas_model, Path(scratch) / "repository")
        stack_options = local_options(subset, workdir=Path(scratch) / "serve", exit_timeout_s=5)
        with serve(stack_options) as stack:
            result.machine = result.machine or fingerprint(stack.triton.http_url)
            gateway = stack.gateway.pid if stack.gateway else 0
            pids = tuple(pid for pid in (stack.triton.pid, gateway) if pid)
            for protocol, name in MAAS_PROTOCOLS.items():
                log.info("%s: maas over %s", task.name, name)
                url = stack.grpc_url if protocol == "grpc" else stack.http_url
                levels = load(task, options, url, protocol, pids, stack.triton.http_url)
                title = f"maas ({name} via gateway)"
                runs.append(
                    SystemRun(task.name, "maas", title, f"{name}, dynamic batching", levels)
                )
    return runs


def subset_repository(repository: ModelRepository, model: str, folder: Path) -> Path:
    """A repository of `model` and the models its ensemble steps call, and nothing else.

    Each system loads only what the task needs, so memory is compared like for like.
    """
    folder.mkdir(parents=True)
    wanted, pending = set(), [model]
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        wanted.add(name)
        steps = repository.read_config(name).ensemble_scheduling.step
        pending += [step.model_name for step in steps]
    for name in sorted(wanted):
        shutil.copytree(repository.root / name, folder / name, symlinks=True)
    manifest = repository.root / "manifest.json"
    if manifest.is_file():
        shutil.copy(manifest, folder / manifest.name)
    return folder


def run_naive(task: PeerTask, options: PeersOptions) -> SystemRun:
    """The naive FastAPI + PyTorch service (eager fp32, no batching): the floor."""
    log.info("%s: %s", task.name, NAIVE_TITLE)
    with naive_service(task.artifact, ModelRepository(options.repository)) as url:
        levels = load(task, options, url, "naive", (listener_pid(url),))
    return SystemRun(task.name, "naive", NAIVE_TITLE, "1 process, no batching", levels)


def run_peer(peer: str, setting: PeerSetting, task: PeerTask, options: PeersOptions) -> SystemRun:
    """One peer under one setting, started for this run alone."""
    launcher = LAUNCHERS[peer]
    log.info("%s: %s, %s", task.name, launcher.title, setting.label)
    env = PeerEnvironment(options.repository, task.name, setting.threads)
    with (
        tempfile.TemporaryDirectory(prefix=f"maas-{peer}-") as scratch,
        running(launcher, setting, env, Path(scratch)) as peer_process,
    ):
        levels = load(task, options, peer_process.url, peer, peer_process.pids)
    return SystemRun(task.name, peer, launcher.title, setting.label, levels)
