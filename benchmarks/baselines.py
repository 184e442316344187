"""What served numbers are compared with, measured on the same machine with the same inputs.

- the limit: the served artifact run in-process by its runtime, at the batch size Triton formed;
- the in-process pipeline at concurrency 1 (decode, preprocess, model), for latency overhead;
- the naive service users write instead: FastAPI + PyTorch eager, one request per forward pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from maas.errors import MaasError
from maas.export.repository import ModelRepository
from maas.runtimes import Runner, RuntimeOptions, load_runner
from maas.server.batching import plan_calls
from maas.server.embedded import free_port
from maas.server.serving_repo import ADAPTED_BACKENDS, backend_of

from .workloads import (
    PREPROCESS_SUFFIX,
    RAW_IMAGE_INPUT,
    Inputs,
    build_workload,
    image_preprocessor,
)

NAIVE_START_TIMEOUT_S = 180.0
SERVED_STRATEGY = "buckets"  # maas serve's default padding strategy


class BaselineError(MaasError):
    """A baseline could not be measured."""


@dataclass(frozen=True)
class ServedArtifact:
    """The file a model's served version runs, and how its runtime loads it."""

    model: str
    runtime: str
    path: Path
    options: RuntimeOptions

    def load(self) -> Runner:
        """Load it as the serving adapter does."""
        return load_runner(self.runtime, self.path, self.options)


def served_artifact(repository: ModelRepository, model: str) -> ServedArtifact:
    """The newest version's artifact of a model served through a runtime."""
    config = repository.read_config(model)
    runtime = backend_of(config)
    if runtime not in ADAPTED_BACKENDS:
        raise BaselineError(f"model {model!r} runs on {runtime!r}, not a model runtime")
    version = max(repository.versions(model))
    filename = config.default_model_filename or ADAPTED_BACKENDS[runtime]
    parameters = {key: value.string_value for key, value in config.parameters.items()}
    options = RuntimeOptions(
        precision=parameters.get("precision", "fp32"), threads=int(parameters.get("threads", "0"))
    )
    return ServedArtifact(
        model, runtime, repository.version_dir(model, version) / filename, options
    )


@dataclass(frozen=True)
class Throughput:
    """In-process samples per second at one batch size."""

    batch: int
    samples_per_s: float
    batches: int


def runtime_calls(requests: list[Inputs], padding_mask: str | None) -> list[Inputs]:
    """The runtime calls the serving adapter makes for these requests as one formed batch."""
    if padding_mask is None:
        return [{name: np.concatenate([r[name] for r in requests]) for name in requests[0]}]
    return plan_calls(requests, padding_mask, SERVED_STRATEGY)[1]


def in_process_limit(
    repository: ModelRepository, model: str, batch: int, seconds: float = 5.0, repeats: int = 3
) -> Throughput:
    """Samples/s of the served artifact at `batch`, cycling through the benchmark's payloads.

    Variable-length inputs are grouped and padded exactly as the serving adapter does it, so
    the limit computes the same positions the server computes. The runtime gets every core
    (its default), whatever thread count the serving config asks for. The median of `repeats`
    timings of seconds/repeats each: one noisy slice does not move the limit.
    """
    workload = build_workload(repository, model)
    padding_mask = repository.read_config(model).parameters["padding_mask"].string_value or None
    batches = [
        runtime_calls(workload.batch(batch, start), padding_mask)
        for start in range(0, len(workload.requests), batch)
    ]
    artifact = served_artifact(repository, model)
    runner = load_runner(artifact.runtime, artifact.path, replace(artifact.options, threads=0))
    for calls in batches[:3]:
        runner.infer(calls[0])  # warm-up: first calls compile and allocate
    rates, formed = [], 0
    for _ in range(repeats):
        done, began = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - began) < seconds / repeats:
            for feed in batches[(formed + done) % len(batches)]:
                runner.infer(feed)
            done += 1
        formed += done
        rates.append(done * batch / elapsed)
    return Throughput(batch, float(np.median(rates)), formed)


def pipeline(repository: ModelRepository, model: str) -> tuple[str, Callable[[], object]]:
    """One request run in-process as the served path runs it; returns (description, call).

    For an image ensemble `<m>_image`: decode and preprocess the image bytes, then run `<m>`'s
    artifact. For a model taking tensors: its artifact on the prepared tensor.
    """
    workload = build_workload(repository, model)
    if workload.kind == "image":
        classifier = model.removesuffix("_image")
        preprocess = image_preprocessor(repository, classifier).preprocess
        runner = served_artifact(repository, classifier).load()
        input_name = repository.read_config(classifier).input[0].name
        encoded = bytes(workload.requests[0][RAW_IMAGE_INPUT].reshape(-1)[0])

        def image_call() -> object:
            return runner.infer({input_name: preprocess(encoded, 0)[None]})

        return f"decode + {classifier}{PREPROCESS_SUFFIX} + {classifier} in-process", image_call
    if workload.kind in ("image-tensor", "text-tensor"):
        runner = served_artifact(repository, model).load()
        feed = workload.requests[0]
        return f"{model} artifact in-process", lambda: runner.infer(feed)
    raise BaselineError(f"no in-process pipeline for {model!r} ({workload.kind} inputs)")


def latencies_ms(call: Callable[[], object], seconds: float = 5.0, warmup: int = 20) -> np.ndarray:
    """Latencies of back-to-back calls (concurrency 1) for `seconds`, after a warm-up."""
    for _ in range(warmup):
        call()
    values = []
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        start = time.perf_counter()
        call()
        values.append(time.perf_counter() - start)
    return np.asarray(values) * 1000.0


# --- the naive service ---------------------------------------------------------------------


@contextmanager
def naive_service(model: str, repository: ModelRepository) -> Iterator[str]:
    """Start the FastAPI + PyTorch service for an image model; yield its host:port."""
    port = free_port()
    environment = dict(os.environ, MAAS_NAIVE_MODEL=model, MAAS_REPOSITORY=str(repository.root))
    command = [sys.executable, "-m", "uvicorn", "maas.benchmarks.naive_service:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, env=environment)
    try:
        wait_healthy(f"127.0.0.1:{port}", process)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait for GET /health to answer 200, or fail with the reason."""
    deadline = time.monotonic() + NAIVE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BaselineError(f"the naive service exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise BaselineError(f"the naive service was not healthy within {NAIVE_START_TIMEOUT_S:.0f} s")
