"""Start and stop each peer, one at a time, serving one task with one batching setting.

A registry of launchers: each knows its peer's command line, when it is ready, which
settings its documentation recommends trying, and why it cannot run here (a package or Java
missing). Every peer runs as a process tree of its own; the tree's pids are handed to the load
test for CPU and memory, and the whole tree is stopped before the next peer starts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil

from maas.base.errors import BaselineError
from maas.base.triton.endpoints import free_port

from .tasks import TASKS
from .work import PeerEnvironment

START_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 30.0
CORES = os.cpu_count() or 1
INSTALL_HINT = "pip install 'maas[peers]'"
FAILED_TO_START = ("Application startup failed", "Traceback (most recent call last)")
QUIET = {
    "BENTOML_DO_NOT_TRACK": "true",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "0",
    "TS_DISABLE_SYSTEM_METRICS": "true",
    "PYTHONWARNINGS": "ignore",
}


@dataclass(frozen=True)
class PeerSetting:
    """One configuration of a peer's batching and workers, all with the machine's threads."""

    workers: int  # processes (BentoML, TorchServe) or replicas (Ray) that each load the model
    wait_ms: float = 0.0  # how long a batch waits to fill; 0 where the peer adapts it itself

    @property
    def threads(self) -> int:
        """Runtime threads per worker: the cores shared out; 0 (the served config's) for one."""
        return 0 if self.workers == 1 else max(1, CORES // self.workers)

    @property
    def label(self) -> str:
        """e.g. '2 workers × 1 thread, wait 10 ms'."""
        threads = (
            f"{self.threads} thread{'s' * (self.threads != 1)}" if self.threads else "all cores"
        )
        wait = f", wait {self.wait_ms:g} ms" if self.wait_ms else ", adaptive wait"
        return f"{self.workers} worker{'s' * (self.workers != 1)} × {threads}{wait}"


@dataclass(frozen=True)
class PeerCommand:
    """How to start a peer: its command line and environment, its address, when it is ready."""

    argv: list[str]
    variables: dict[str, str]
    url: str  # host:port
    ready: Callable[[Path], bool]  # given the peer's log


@dataclass(frozen=True)
class RunningPeer:
    """A started peer: where to call it and the processes that are its cost."""

    url: str  # host:port
    pids: tuple[int, ...]


def package_versions(*names: str) -> str:
    """'name x.y.z' for each installed package."""
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def missing_modules(*modules: str) -> str:
    """The reason a peer cannot start if a module is not installed."""
    absent = [module for module in modules if not importable(module)]
    return f"{', '.join(absent)} not installed ({INSTALL_HINT})" if absent else ""


def importable(module: str) -> bool:
    """Whether a module is installed (a submodule's parent package is imported to look)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def environment(env: PeerEnvironment, setting: PeerSetting) -> dict[str, str]:
    """The process environment a peer starts with: its task, settings, and quiet logging."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        **QUIET,
        **env.variables(),
        "MAAS_PEER_WORKERS": str(setting.workers),
        "MAAS_PEER_WAIT_MS": str(setting.wait_ms),
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }


def spawn(command: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start a peer in a session of its own, its output to a log file."""
    with log.open("wb") as sink:
        return subprocess.Popen(
            command, env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_until(
    ready: Callable[[], bool], process: subprocess.Popen[bytes], name: str, log: Path
) -> None:
    """Poll `ready` until it holds; a BaselineError if the peer exits or never gets there."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:]
            raise BaselineError(
                f"{name} exited with code {process.returncode} while starting:\n{tail}"
            )
        text = log.read_text(errors="replace") if log.is_file() else ""
        if any(marker in text for marker in FAILED_TO_START):
            raise BaselineError(f"{name} failed to start:\n{text[-1500:]}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise BaselineError(f"{name} was not ready within {START_TIMEOUT_S:.0f} s; see {log}")


def http_ok(url: str, contains: str = "") -> bool:
    """GET url answered 200 (and its body holds `contains`)."""
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200 and contains in response.read().decode(errors="replace")


def stop_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the peer, let it shut down, then kill whatever of its tree is left."""
    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        tree = []
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    _, alive = psutil.wait_procs(tree, timeout=5)
    for leftover in alive:
        with contextlib.suppress(psutil.Error):
            leftover.kill()
    psutil.wait_procs(alive, timeout=5)


@contextmanager
def running(
    launcher: PeerLauncher, setting: PeerSetting, env: PeerEnvironment, workdir: Path
) -> Iterator[RunningPeer]:
    """Start a peer, yield it, and stop its whole tree on the way out."""
    workdir.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield launcher.start(setting, env, workdir, started)
    finally:
        for process in started:
            stop_tree(process)


class PeerLauncher:
    """What every launcher shares: its packages, its settings, and how a process is awaited."""

    name = ""
    title = ""
    modules: tuple[str, ...] = ()  # importable when the peer is installed
    packages: tuple[str, ...] = ()  # whose versions the report names
    wait_ms = 0.0  # the batch wait the peer's documentation suggests; 0: adaptive

    def missing(self) -> str:
        """Why this peer cannot run here; empty if it can."""
        return missing_modules(*self.modules)

    def versions(self) -> str:
        """The exact versions that ran."""
        return package_versions(*self.packages)

    def settings(self) -> tuple[PeerSetting, ...]:
        """The settings tried: one worker with every core, two with one core each."""
        return (PeerSetting(1, self.wait_ms), PeerSetting(2, self.wait_ms))

    def start(
        self,
        setting: PeerSetting,
        env: PeerEnvironment,
        workdir: Path,
        started: list[subprocess.Popen[bytes]],
    ) -> RunningPeer:
        """Start serving (each process into `started`); return once requests can be answered."""
        planned = self.command(setting, env, workdir)
        log = workdir / f"{self.name}.log"
        process = spawn(planned.argv, planned.variables, log, workdir)
        started.append(process)
        wait_until(lambda: planned.ready(log), process, self.title, log)
        return RunningPeer(planned.url, (process.pid,))

    def command(self, setting: PeerSetting, env: PeerEnvironment, workdir: Path) -> PeerCommand:
        """The peer's command line for one setting and task."""
        raise NotImplementedError


class BentoMLLauncher(PeerLauncher):
    """`bentoml serve` of MaasPeer: adaptive batching, `workers` processes."""

    name, title = "bentoml", "BentoML"
    modules = packages = ("bentoml",)

    def command(self, setting: PeerSetting, env: PeerEnvironment, workdir: Path) -> PeerCommand:
        """`bentoml serve`, ready once /readyz answers."""
        url = f"127.0.0.1:{free_port()}"
        command = [str(Path(sys.executable).parent / "bentoml"), "serve"]
        command += ["maas.benchmarks.peers.bentoml_service:MaasPeer", "--host", "127.0.0.1"]
        command += ["--port", url.rsplit(":", 1)[1]]
        ready = lambda _: http_ok(f"http://{url}/readyz")  # noqa: E731
        return PeerCommand(command, environment(env, setting), url, ready)


class RayServeLauncher(PeerLauncher):
    """A local Ray with Serve's HTTP proxy and one `@serve.batch` deployment."""

    name, title = "ray", "Ray Serve"
    modules, packages = ("ray", "ray.serve"), ("ray",)
    wait_ms = 10.0  # Ray Serve's default batch_wait_timeout_s

    def command(self, setting: PeerSetting, env: PeerEnvironment, workdir: Path) -> PeerCommand:
        """The Serve app script, ready once it prints READY."""
        port = free_port()
        command = [sys.executable, "-m", "maas.benchmarks.peers.ray_app", str(port)]
        variables = environment(env, setting) | {"RAY_TMPDIR": str(short_tmp())}
        ready = lambda log: "READY" in log.read_text(errors="replace")  # noqa: E731
        return PeerCommand(command, variables, f"127.0.0.1:{port}", ready)


def short_tmp() -> Path:
    """Ray's socket paths must stay under 107 bytes: a short folder of its own in /tmp."""
    folder = Path("/tmp") / f"maas-ray-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    return folder


class TorchServeLauncher(PeerLauncher):
    """TorchServe (Java frontend) with the handler archived as a .mar, batching per model."""

    name, title = "torchserve", "TorchServe"
    modules, packages = ("ts", "model_archiver"), ("torchserve", "torch-model-archiver")
    wait_ms = 10.0

    def missing(self) -> str:
        """Why this peer cannot run here; empty if it can."""
        absent = super().missing()
        if absent or shutil.which("java") is not None:
            return absent
        return "no Java runtime (TorchServe's frontend): apt-get install openjdk-17-jre-headless"

    def versions(self) -> str:
        """The exact versions that ran, Java's included."""
        return f"{super().versions()}, {java_version()}"

    def command(self, setting: PeerSetting, env: PeerEnvironment, workdir: Path) -> PeerCommand:
        """`torchserve --foreground` on an archive made here, ready once every worker is."""
        task = TASKS[env.task]
        store = workdir / "model_store"
        archive(task.route, store, workdir)
        ports = {kind: free_port() for kind in ("inference", "management", "metrics")}
        config = workdir / "config.properties"
        config.write_text(
            torchserve_config(task.route, task.max_batch, setting, ports, store, workdir)
        )
        command = [str(Path(sys.executable).parent / "torchserve"), "--start", "--foreground"]
        command += ["--ncs", "--ts-config", str(config), "--disable-token-auth"]
        describe = f"http://127.0.0.1:{ports['management']}/models/{task.route}"
        ready = lambda _: ready_workers(describe) >= setting.workers  # noqa: E731
        url = f"127.0.0.1:{ports['inference']}"
        return PeerCommand(command, environment(env, setting), url, ready)


def archive(name: str, store: Path, workdir: Path) -> None:
    """A .mar holding just the handler: the artifact is read from the repository, as maas does."""
    from . import torchserve_handler

    store.mkdir(parents=True, exist_ok=True)
    command = [str(Path(sys.executable).parent / "torch-model-archiver"), "--model-name", name]
    command += ["--version", "1.0", "--handler", str(torchserve_handler.__file__)]
    command += ["--export-path", str(store), "--force"]
    subprocess.run(command, check=True, cwd=workdir, capture_output=True)


def torchserve_config(
    name: str,
    max_batch: int,
    setting: PeerSetting,
    ports: dict[str, int],
    store: Path,
    workdir: Path,
) -> str:
    """config.properties: loopback ports, the model's batching, quiet logs, a bounded JVM."""
    log4j = workdir / "log4j2.xml"
    log4j.write_text(QUIET_LOG4J)
    model = (
        f'{{"{name}":{{"1.0":{{"marName":"{name}.mar","minWorkers":{setting.workers},'
        f'"maxWorkers":{setting.workers},"batchSize":{max_batch},'
        f'"maxBatchDelay":{int(setting.wait_ms)},"responseTimeout":120}}}}}}'
    )
    return "\n".join(
        [
            f"inference_address=http://127.0.0.1:{ports['inference']}",
            f"management_address=http://127.0.0.1:{ports['management']}",
            f"metrics_address=http://127.0.0.1:{ports['metrics']}",
            f"model_store={store}",
            f"load_models={name}.mar",
            f"models={model}",
            "disable_token_authorization=true",
            "install_py_dep_per_model=false",
            "disable_system_metrics=true",
            "async_logging=true",
            f"vmargs=-Xmx512m -XX:ActiveProcessorCount={CORES} "
            f"-Dlog4j.configurationFile=file://{log4j}",
            "",
        ]
    )


QUIET_LOG4J = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration>
  <Appenders>
    <Console name="STDOUT" target="SYSTEM_OUT">
      <PatternLayout pattern="%d %-5p %c - %m%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="ACCESS_LOG" level="off" additivity="false"/>
    <Logger name="MODEL_LOG" level="warn" additivity="false"><AppenderRef ref="STDOUT"/></Logger>
    <Logger name="MODEL_METRICS" level="off" additivity="false"/>
    <Logger name="TS_METRICS" level="off" additivity="false"/>
    <Root level="warn"><AppenderRef ref="STDOUT"/></Root>
  </Loggers>
</Configuration>
"""


def ready_workers(describe_url: str) -> int:
    """How many of the model's workers TorchServe's management API reports READY."""
    import json

    with urllib.request.urlopen(describe_url, timeout=2) as response:
        described = json.loads(response.read())
    workers = described[0].get("workers", []) if described else []
    return sum(worker.get("status") == "READY" for worker in workers)


def java_version() -> str:
    """The Java runtime TorchServe's frontend runs on."""
    java = shutil.which("java")
    if java is None:
        return "no Java"
    completed = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    return completed.stderr.splitlines()[0] if completed.stderr else "java (unknown version)"


LAUNCHERS: dict[str, PeerLauncher] = {
    launcher.name: launcher
    for launcher in (BentoMLLauncher(), RayServeLauncher(), TorchServeLauncher())
}
