"""A model's Python stub killed under load: in-flight calls fail clearly, the model comes back.

Triton 2.51 does not restart a dead stub (the model stays "ready" and every call fails with
"Stub process ... is not healthy"); `maas serve`'s watchdog reloads the model.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from maas.clients import NO_RETRIES, ModelClient, Protocol
from maas.errors import MaasError
from maas.server.embedded import REGION_PREFIX, SHM_DIR, free_port
from tests.conftest import Exported, RunningServer, start_maas_serve, stop_maas_serve

STUB = "triton_python_backend_stub"


def stub_of(serve: RunningServer, model: str) -> psutil.Process:
    (stub,) = [
        child
        for child in psutil.Process(serve.process.pid).children(recursive=True)
        if child.name() == STUB and f"/{model}/" in " ".join(child.cmdline())
    ]
    return stub


def regions() -> set[str]:
    return {path.name for path in SHM_DIR.glob(REGION_PREFIX + "*")}


def wait_for(condition: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_killed_stub_fails_only_in_flight_calls_and_its_model_comes_back(
    exported: Exported, tmp_path: Path, protocol: Protocol
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(exported.repository.model_dir("digits_cnn"), repo / "digits_cnn")
    serve = start_maas_serve(repo, tmp_path, ports=(free_port(), free_port(), free_port()))
    pixels = exported.results["digits_cnn"].built.eval_inputs["pixels"][:4]
    calls: list[tuple[float, str]] = []
    stop = threading.Event()

    def load() -> None:
        with ModelClient(
            "digits_cnn", url=serve.url(protocol), protocol=protocol, retry=NO_RETRIES
        ) as c:
            while not stop.is_set():
                began = time.monotonic()
                try:
                    np.testing.assert_array_equal(
                        c.infer({"pixels": pixels})["probabilities"], expected
                    )
                    calls.append((began, ""))
                except MaasError as failure:
                    calls.append((began, str(failure)))

    try:
        with ModelClient("digits_cnn", url=serve.url(protocol), protocol=protocol) as client:
            expected = client.infer({"pixels": pixels})["probabilities"]
        baseline = regions()
        first = stub_of(serve, "digits_cnn")
        workers = [threading.Thread(target=load, args=(expected,)) for _ in range(3)]
        for worker in workers:
            worker.start()
        time.sleep(1.0)
        killed = time.monotonic()
        first.send_signal(signal.SIGKILL)
        wait_for(lambda: "reloaded with a new stub" in serve.log.read_text(), 60, "no reload")
        time.sleep(2.0)
        stop.set()
        for worker in workers:
            worker.join()
        assert stub_of(serve, "digits_cnn").pid != first.pid
        # The dead stub's region is released once Triton drops the old instance (~20 s here).
        wait_for(lambda: regions() == baseline, 90, f"/dev/shm: {regions()} vs {baseline}")
    finally:
        stop.set()
        assert stop_maas_serve(serve) == 0
    before = [error for began, error in calls if began < killed]
    after = [error for began, error in calls if began >= killed]
    assert before and sum(1 for error in before if error) <= len(workers), "only in-flight fail"
    failures = [error for error in after if error]
    assert all("is not healthy" in error for error in failures), failures
    assert len(failures) < len(after) / 2 and not any(after[-20:]), "later calls succeed"
