"""Replicas behind one gateway, under load: a replica killed, and a rolling model update.

The callers retry nothing (`RetryPolicy(attempts=1)`): a request that survives does so because
the gateway sent it to another replica, not because the client tried again.
"""

from __future__ import annotations

import re
import shutil
import signal
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import yaml

from maas.clients import ModelClient, Protocol
from maas.clients.retry import RetryPolicy
from maas.export.verify import cosine_similarities
from tests.conftest import (
    VERSIONED_MODEL,
    Exported,
    RunningServer,
    start_maas_serve,
    stop_maas_serve,
)

ROOT = Path(__file__).resolve().parents[2]
CALLERS: tuple[Protocol, ...] = ("http", "grpc", "http", "grpc")


@dataclass
class Load:
    """Callers that send the same request in a loop and keep every answer and failure."""

    serve: RunningServer
    model: str
    inputs: dict[str, np.ndarray]
    output: str
    answers: list[tuple[float, np.ndarray]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._call, args=(p,)) for p in CALLERS]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _call(self, protocol: Protocol) -> None:
        url, once = self.serve.url(protocol), RetryPolicy(attempts=1)
        with ModelClient(self.model, url, protocol, timeout_s=30, retry=once) as client:
            while not self._stop.is_set():
                try:
                    answer = client.infer(self.inputs)[self.output]
                except Exception as failure:  # every failure is the test's finding
                    with self._lock:
                        self.failures.append(f"{protocol}: {failure}")
                    continue
                with self._lock:
                    self.answers.append((time.monotonic(), answer))


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def replica_process(serve: RunningServer, workdir: Path, number: int) -> psutil.Process:
    """The tritonserver of replica `number` (its own folder; replica 1 uses the workdir)."""
    folder = workdir / f"replica-{number}" / "repository"
    (found,) = [
        child
        for child in psutil.Process(serve.process.pid).children(recursive=True)
        if child.name() == "tritonserver" and f"--model-repository={folder}" in child.cmdline()
    ]
    return found


def replica_metrics_url(serve: RunningServer, number: int) -> str:
    match = re.search(rf"metrics of replica {number} (\S+)", serve.log.read_text())
    assert match, serve.log.read_text()
    return match.group(1)


def successes(metrics_url: str, model: str) -> float:
    with urllib.request.urlopen(metrics_url, timeout=5) as page:
        text = page.read().decode()
    pattern = rf'^nv_inference_request_success{{model="{model}",version="\d+"}} (\S+)$'
    return sum(float(value) for value in re.findall(pattern, text, re.MULTILINE))


def flag_names(arguments: list[str]) -> list[str]:
    return [argument.split("=")[0] for argument in arguments]


def yaml_triton_args() -> list[str]:
    """The Triton container's args in the committed Deployment (deploy/k8s)."""
    deployment = yaml.safe_load((ROOT / "deploy/k8s/base/deployment.yaml").read_text())
    containers = deployment["spec"]["template"]["spec"]["containers"]
    (triton,) = [container for container in containers if container["name"] == "triton"]
    return list(triton["args"])


def serve_replicas(repo: Path, workdir: Path) -> RunningServer:
    return start_maas_serve(repo, workdir, extra_args=("--replicas", "2"))


def test_a_replica_killed_under_load_loses_no_request_and_rejoins(
    exported: Exported, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(exported.repository.model_dir("digits_cnn"), repo / "digits_cnn")
    pixels = exported.results["digits_cnn"].built.eval_inputs["pixels"][:4]
    serve = serve_replicas(repo, tmp_path)
    try:
        with ModelClient("digits_cnn", url=serve.http_url) as client:
            expected = client.infer({"pixels": pixels})["probabilities"]
        second = replica_metrics_url(serve, 2)
        with Load(serve, "digits_cnn", {"pixels": pixels}, "probabilities") as load:
            wait_for(lambda: successes(second, "digits_cnn") > 20, 30, "replica 2 got no load")
            victim = replica_process(serve, tmp_path, 2)
            victim.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            wait_for(
                lambda: "tritonserver replica 2 is back and ready" in serve.log.read_text(),
                120,
                "replica 2 was not restarted",
            )
            back = successes(second, "digits_cnn")
            wait_for(lambda: successes(second, "digits_cnn") > back + 20, 30, "no rejoin")
        assert replica_process(serve, tmp_path, 2).pid != victim.pid
        # The flags a local replica runs with are those the Kubernetes pod's Triton gets.
        local = replica_process(serve, tmp_path, 2).cmdline()[1:]
        assert flag_names(local) == flag_names(yaml_triton_args())
        assert not load.failures, load.failures[:5]
        during = [answer for at, answer in load.answers if at > killed]
        assert len(during) > 50, "the load went on while replica 2 was down"
        for _, answer in load.answers:
            np.testing.assert_allclose(answer, expected, rtol=1e-5, atol=1e-6)
    finally:
        assert stop_maas_serve(serve) == 0
    assert "tritonserver replica 2 killed by SIGKILL" in serve.log.read_text()


def test_a_rolling_update_switches_every_replica_with_no_failed_request(
    exported: Exported, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    source = exported.repository.model_dir(VERSIONED_MODEL)
    shutil.copytree(source, repo / VERSIONED_MODEL, ignore=shutil.ignore_patterns("2"))
    result = exported.results[f"{VERSIONED_MODEL}@2"]
    batch = {name: array[:3] for name, array in result.built.eval_inputs.items()}
    serve = serve_replicas(repo, tmp_path)
    try:

        def answer(version: str) -> np.ndarray:
            with ModelClient(VERSIONED_MODEL, url=serve.http_url, version=version) as client:
                return client.infer(batch)["embeddings"]

        old = answer("1")
        with Load(serve, VERSIONED_MODEL, batch, "embeddings") as load:
            time.sleep(1.0)
            shutil.copytree(source / "2", repo / VERSIONED_MODEL / "2")  # the new version
            serve.process.send_signal(signal.SIGHUP)
            wait_for(lambda: "rollout: done" in serve.log.read_text(), 180, "no rollout")
            done = time.monotonic()
            time.sleep(1.0)
        new = answer("2")
        assert cosine_similarities(old, new).max() < 0.99  # really different versions
        assert not load.failures, load.failures[:5]
        versions = []
        for at, served in load.answers:
            closest_old = cosine_similarities(old, served).min()
            closest_new = cosine_similarities(new, served).min()
            assert max(closest_old, closest_new) >= 0.999, "an answer of neither version"
            versions.append((at, 1 if closest_old >= 0.999 else 2))
        assert {v for _, v in versions} == {1, 2}
        assert all(v == 2 for at, v in versions if at > done), "the old version after the update"
    finally:
        assert stop_maas_serve(serve) == 0
    log = serve.log.read_text()
    assert log.count("serves the new repository") == 2, log
