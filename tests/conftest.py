"""Shared fixtures: one real export and one real `maas serve` for the whole session."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from maas.base.triton.endpoints import free_port
from maas.clients import Protocol
from maas.export import (
    ExportResult,
    ModelRepository,
    ModelSpec,
    export_model,
    get_spec,
    model_names,
)
from maas.export.text import hf_text_spec, text_task
from tests.tiny_bert import make_tiny_bert

STARTUP_TIMEOUT_S = 180
VERSIONED_MODEL = "tiny_versions"
VERSIONS = (1, 2)


@dataclass(frozen=True)
class Exported:
    """A repository exported once for the session, with the source models kept for references."""

    repository: ModelRepository
    results: dict[str, ExportResult]


@dataclass(frozen=True)
class RunningServer:
    """A `maas serve` process and its endpoints."""

    process: subprocess.Popen[str]
    http_url: str
    grpc_url: str
    metrics_port: int
    log: Path
    gateway_metrics_port: int = 0
    stack_metrics_port: int = 0
    tls_ca: Path | None = None  # the public ports serve TLS only; clients trust this CA

    def url(self, protocol: Protocol) -> str:
        return self.http_url if protocol == "http" else self.grpc_url

    def is_ready(self) -> bool:
        scheme, context = "http", None
        if self.tls_ca is not None:
            scheme, context = "https", ssl.create_default_context(cafile=self.tls_ca)
        try:
            with urllib.request.urlopen(
                f"{scheme}://{self.http_url}/v2/health/ready", timeout=2, context=context
            ) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False


# name → (task, truncation): tiny random BERTs exported from local folders, as a user would.
TINY_BERTS = {
    "tiny_bert_embedder": ("feature-extraction", True),
    "tiny_bert_classifier": ("text-classification", True),
    "tiny_bert_strict": ("feature-extraction", False),
}


def tiny_bert_specs(folder: Path) -> list[ModelSpec]:
    """Specs for the tiny BERTs, each saved as its own Hugging Face folder."""
    return [
        hf_text_spec(make_tiny_bert(folder / name, task), text_task(task), name, truncation=cut)
        for name, (task, cut) in TINY_BERTS.items()
    ]


def one_shot_models() -> list[str]:
    """Registered models that answer a request with one response (every one but decoders)."""
    return [name for name in model_names() if get_spec(name).task != "text-generation"]


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    repository = ModelRepository(tmp_path_factory.mktemp("model_repository"))
    # Decoders are exported by their own tests (test_generation_serving), from a smaller recipe.
    results = {name: export_model(get_spec(name), repository) for name in one_shot_models()}
    # Random tiny BERTs give near-uniform scores that reduced precision may reorder: keep fp32.
    for spec in tiny_bert_specs(tmp_path_factory.mktemp("hf")):
        results[spec.name] = export_model(spec, repository, targets=["onnxruntime-fp32"])
    # Two versions of one model, from differently seeded folders: each must answer for itself.
    for version in VERSIONS:
        folder = make_tiny_bert(
            tmp_path_factory.mktemp(f"v{version}"), "feature-extraction", version
        )
        spec = hf_text_spec(folder, "feature-extraction", VERSIONED_MODEL)
        results[f"{VERSIONED_MODEL}@{version}"] = export_model(spec, repository, version=version)
    # The fp32 path, forced, for comparisons that reduced precision is not meant to pass.
    fp32 = replace(get_spec("minilm"), name="minilm_fp32")
    results[fp32.name] = export_model(fp32, repository, targets=["onnxruntime-fp32"])
    return Exported(repository, results)


READY_LINE = "ready; Ctrl-C or SIGTERM stops it"


def start_maas_serve(
    repository: Path,
    workdir: Path,
    exit_timeout: int = 10,
    extra_args: Sequence[str] = (),
    ports: tuple[int, int, int] | None = None,
    tls_ca: Path | None = None,
) -> RunningServer:
    """Start `maas serve` as a user would, on free ports, and wait until it is ready."""
    http_port, grpc_port, metrics_port = ports or (free_port(), free_port(), free_port())
    gateway_metrics_port, stack_metrics_port = free_port(), free_port()
    log = workdir / "maas-serve.out"
    command = [
        sys.executable, "-m", "maas.cli", "serve",
        "--repository", str(repository),
        "--http-port", str(http_port), "--grpc-port", str(grpc_port),
        "--metrics-port", str(metrics_port), "--gateway-metrics-port", str(gateway_metrics_port),
        "--stack-metrics-port", str(stack_metrics_port),
        "--workdir", str(workdir), "--exit-timeout", str(exit_timeout), *extra_args,
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True)
    server = RunningServer(
        process,
        f"127.0.0.1:{http_port}",
        f"127.0.0.1:{grpc_port}",
        metrics_port,
        log,
        gateway_metrics_port,
        stack_metrics_port,
        Path(extra_args[list(extra_args).index("--tls-cert") + 1])
        if "--tls-cert" in extra_args
        else tls_ca,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    # Ready when maas serve says so: the gateway may answer HTTP before the stack has seen all
    # its ports listen, and a test that kills it then races the start, not the watchdog.
    while not (server.is_ready() and READY_LINE in log.read_text()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"maas serve did not become ready:\n{log.read_text()}")
        time.sleep(0.25)
    return server


def stop_maas_serve(server: RunningServer) -> int:
    """SIGTERM, as an orchestrator would; returns the exit code."""
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.process.kill()
        raise


@pytest.fixture(scope="session")
def server(exported: Exported, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_maas_serve(exported.repository.root, tmp_path_factory.mktemp("serve"))
    yield running
    code = stop_maas_serve(running)
    assert code == 0, f"maas serve exited with {code}:\n{running.log.read_text()}"


@pytest.fixture(params=["http", "grpc"])
def protocol(request: pytest.FixtureRequest) -> Protocol:
    return "http" if request.param == "http" else "grpc"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Integration tests share one server; run them after the fast unit tests.
    integration = [item for item in items if "integration" in str(item.fspath)]
    for item in integration:
        item.add_marker(pytest.mark.integration)
    items[:] = [item for item in items if item not in integration] + integration


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
