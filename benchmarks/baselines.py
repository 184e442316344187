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
from dataclasses import dataclass

import numpy as np

from maas.base.errors import BaselineError
from maas.base.served.adapter import ServedModelRunner
from maas.base.triton.endpoints import free_port
from maas.base.triton.names import IMAGE
from maas.base.triton.repository import ModelRepository

from .workloads import RAW_IMAGE_INPUT, build_workload, image_preprocessor

NAIVE_START_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Throughput:
    """In-process samples per second at one batch size."""

    batch: int
    samples_per_s: float
    batches: int


def in_process_limit(
    repository: ModelRepository, model: str, batch: int, seconds: float = 5.0, repeats: int = 3
) -> Throughput:
    """Samples/s of the served artifact at `batch`, cycling through the benchmark's payloads.

    Each formed batch runs through the serving adapter's own core (ServedModelRunner), so
    variable-length inputs are grouped and padded exactly as served. The runtime gets every
    core (its default), whatever thread count the serving config asks for. The median of
    `repeats` timings of seconds/repeats each: one noisy slice does not move the limit.
    """
    workload = build_workload(repository, model)
    batches = [workload.batch(batch, start) for start in range(0, len(workload.requests), batch)]
    served = ServedModelRunner.for_repository(repository, model, threads=0)
    for feeds in batches[:3]:
        served.run(feeds)  # warm-up: first calls compile and allocate
    rates, formed = [], 0
    for _ in range(repeats):
        done, began = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - began) < seconds / repeats:
            served.run(batches[(formed + done) % len(batches)])
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
        classifier = IMAGE.base_of(model) or model
        preprocess = image_preprocessor(repository, classifier).preprocess_batch
        served = ServedModelRunner.for_repository(repository, classifier)
        input_name = served.signature.inputs[0]
        encoded = workload.requests[0][RAW_IMAGE_INPUT]

        def image_call() -> object:
            return served.run([{input_name: preprocess(encoded)}])[0]

        return f"decode + {IMAGE.prepare(classifier)} + {classifier} in-process", image_call
    if workload.kind in ("image-tensor", "text-tensor"):
        served = ServedModelRunner.for_repository(repository, model)
        feed = workload.requests[0]
        return f"{model} artifact in-process", lambda: served.run([feed])[0]
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
    settings = {"MAAS_NAIVE_MODEL": model, "MAAS_REPOSITORY": str(repository.root)}
    with uvicorn_service("maas.benchmarks.naive_service:app", settings) as url:
        yield url


@contextmanager
def uvicorn_service(app: str, settings: dict[str, str]) -> Iterator[str]:
    """Start a FastAPI app with uvicorn on a free port; yield its host:port once healthy."""
    port = free_port()
    environment = dict(os.environ, **settings)
    command = [sys.executable, "-m", "uvicorn", app]
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
