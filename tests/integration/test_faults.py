"""Faults: a Python stub or tritonserver itself killed; the watchdog brings them back.

A model's Python stub killed under load: in-flight calls fail clearly, the model comes back.

Triton 2.51 does not restart a dead stub (the model stays "ready" and every call fails with
"Stub process ... is not healthy"); `maas serve`'s watchdog reloads the model and removes the
dead stub's shared-memory region. A killed tritonserver is restarted, and the regions of its
stubs removed.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from maas.base.errors import MaasError
from maas.clients import NO_RETRIES, ModelClient, Protocol
from maas.monitor.scrape import scrape
from maas.serve.stubs import REGION_PREFIX, SHM_DIR, STUB_NAME
from tests.conftest import Exported, RunningServer, start_maas_serve, stop_maas_serve


@dataclass(frozen=True)
class Call:
    began: float
    ended: float
    error: str  # empty: it succeeded with the expected answer


def stub_of(serve: RunningServer, model: str) -> psutil.Process:
    (stub,) = [
        child
        for child in psutil.Process(serve.process.pid).children(recursive=True)
        if child.name() == STUB_NAME and f"/{model}/" in " ".join(child.cmdline())
    ]
    return stub


def region_of(stub: psutil.Process) -> str:
    (region,) = [arg for arg in stub.cmdline() if arg.startswith(REGION_PREFIX)]
    return str(region)


def regions() -> set[str]:
    return {path.name for path in SHM_DIR.glob(REGION_PREFIX + "*")}


def stack_metric(serve: RunningServer, name: str, **labels: str) -> float:
    """One of the stack's own metrics, as Prometheus would scrape it."""
    return scrape(f"http://127.0.0.1:{serve.stack_metrics_port}/metrics").total(name, **labels)


def serve_digits(exported: Exported, tmp_path: Path) -> tuple[RunningServer, np.ndarray]:
    """`maas serve` of digits_cnn alone, and four real inputs for it."""
    repo = tmp_path / "repo"
    shutil.copytree(exported.repository.model_dir("digits_cnn"), repo / "digits_cnn")
    pixels = exported.results["digits_cnn"].built.eval_inputs["pixels"][:4]
    return start_maas_serve(repo, tmp_path), pixels


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_killed_stub_fails_only_calls_until_its_model_is_reloaded(
    exported: Exported, tmp_path: Path
) -> None:
    serve, pixels = serve_digits(exported, tmp_path)
    calls: list[Call] = []
    stop = threading.Event()

    def load(protocol: Protocol, expected: np.ndarray) -> None:
        url = serve.url(protocol)
        with ModelClient("digits_cnn", url=url, protocol=protocol, retry=NO_RETRIES) as client:
            while not stop.is_set():
                began = time.monotonic()
                try:
                    answer = client.infer({"pixels": pixels})["probabilities"]
                    error = "" if np.array_equal(answer, expected) else "a different answer"
                except MaasError as failure:
                    error = str(failure)
                calls.append(Call(began, time.monotonic(), error))

    try:
        with ModelClient("digits_cnn", url=serve.grpc_url, protocol="grpc") as client:
            expected = client.infer({"pixels": pixels})["probabilities"]
        baseline = regions()
        first = stub_of(serve, "digits_cnn")
        dead_region = region_of(first)
        protocols: list[Protocol] = ["http", "grpc", "http", "grpc"]
        workers = [threading.Thread(target=load, args=(p, expected)) for p in protocols]
        for worker in workers:
            worker.start()
        time.sleep(1.0)
        killed = time.monotonic()
        first.send_signal(signal.SIGKILL)
        wait_for(lambda: "reloaded with a new stub" in serve.log.read_text(), 60, "no reload")
        reloaded = time.monotonic()
        time.sleep(2.0)
        stop.set()
        for worker in workers:
            worker.join()
        second = stub_of(serve, "digits_cnn")
        new_region = region_of(second)
        assert second.pid != first.pid
        assert regions() == baseline - {dead_region} | {new_region}, "one region, the new stub's"
        assert serve.is_ready()
        assert stack_metric(serve, "maas_stub_reloads_total", model="digits_cnn") == 1
        assert stack_metric(serve, "maas_triton_restarts_total") == 0
    finally:
        stop.set()
        assert stop_maas_serve(serve) == 0
    before = [call for call in calls if call.ended < killed]
    during = [call for call in calls if call.ended >= killed and call.began < reloaded]
    after = [call for call in calls if call.began >= reloaded]
    assert before and not any(call.error for call in before), "calls before the kill succeed"
    failed = [call.error for call in during if call.error]
    assert failed, "calls to the dead stub fail"
    assert all("is not healthy" in error for error in failed), set(failed)
    assert len(after) > 100 and not any(call.error for call in after), "calls after the reload"
    log = serve.log.read_text()
    assert "the Python stub of model digits_cnn died; reloading the model" in log, log
    print(f"\n{len(calls)} calls: {len(failed)} failed in the {reloaded - killed:.1f} s to reload")


def child_named(serve: RunningServer, name: str) -> psutil.Process:
    """The one process of that name that `maas serve` runs."""
    (found,) = [
        child
        for child in psutil.Process(serve.process.pid).children(recursive=True)
        if child.name() == name
    ]
    return found


def tritonserver_of(serve: RunningServer) -> psutil.Process:
    return child_named(serve, "tritonserver")


def test_a_dead_tritonserver_is_restarted_and_unready_meanwhile(
    exported: Exported, tmp_path: Path
) -> None:
    serve, pixels = serve_digits(exported, tmp_path)
    try:
        with ModelClient("digits_cnn", url=serve.http_url) as client:
            before = client.infer({"pixels": pixels})["probabilities"]
        first = tritonserver_of(serve)
        old_region = region_of(stub_of(serve, "digits_cnn"))
        first.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        while serve.is_ready():
            assert time.monotonic() - killed < 1.0, "readiness must turn false within a second"
            time.sleep(0.02)
        while not serve.is_ready():
            assert time.monotonic() - killed < 120, "tritonserver was not restarted"
            time.sleep(0.1)
        assert tritonserver_of(serve).pid != first.pid
        while "back and ready (restart 1)" not in serve.log.read_text():
            assert time.monotonic() - killed < 120, "the watchdog did not log the restart"
            time.sleep(0.1)
        with ModelClient("digits_cnn", url=serve.http_url) as client:
            np.testing.assert_array_equal(client.infer({"pixels": pixels})["probabilities"], before)
        assert old_region not in regions(), "the dead server's region is removed"
        assert region_of(stub_of(serve, "digits_cnn")) in regions()
        assert stack_metric(serve, "maas_triton_restarts_total") == 1
        assert stack_metric(serve, "maas_process_resident_bytes", process="tritonserver") > 0
    finally:
        assert stop_maas_serve(serve) == 0
    log = serve.log.read_text()
    assert "tritonserver killed by SIGKILL; restart 1" in log, log


def gateway_of(serve: RunningServer) -> psutil.Process:
    return child_named(serve, "haproxy")


def test_a_dead_gateway_is_restarted_and_serves_both_protocols_again(
    exported: Exported, tmp_path: Path
) -> None:
    serve, pixels = serve_digits(exported, tmp_path)
    try:
        with ModelClient("digits_cnn", url=serve.http_url) as client:
            before = client.infer({"pixels": pixels})["probabilities"]
        first = gateway_of(serve)
        first.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        while "the gateway is back (restart 1)" not in serve.log.read_text():
            assert time.monotonic() - killed < 10, "the watchdog did not restart the gateway"
            time.sleep(0.05)
        assert gateway_of(serve).pid != first.pid
        for protocol in ("http", "grpc"):
            with ModelClient("digits_cnn", url=serve.url(protocol), protocol=protocol) as client:
                after = client.infer({"pixels": pixels})["probabilities"]
            np.testing.assert_array_equal(after, before)
        assert stack_metric(serve, "maas_gateway_restarts_total") == 1
    finally:
        assert stop_maas_serve(serve) == 0
    assert "the gateway killed by SIGKILL; restarting it" in serve.log.read_text()
