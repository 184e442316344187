"""A client rides through a server restart with retries; readiness can be waited for."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from maas.base.triton.endpoints import free_port
from maas.clients import ModelClient, Protocol, RetryPolicy, ServerUnavailableError
from tests.conftest import Exported, RunningServer, start_maas_serve, stop_maas_serve

PATIENT = RetryPolicy(attempts=200, initial_backoff_s=0.1, max_backoff_s=1.0, deadline_s=180)


def test_a_call_made_while_the_server_restarts_succeeds_once_it_is_back(
    exported: Exported, tmp_path: Path, protocol: Protocol
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(exported.repository.model_dir("digits_cnn"), repo / "digits_cnn")
    ports = (free_port(), free_port(), free_port())
    for workdir in ("first", "second"):
        (tmp_path / workdir).mkdir()
    first = start_maas_serve(repo, tmp_path / "first", ports=ports)
    pixels = exported.results["digits_cnn"].built.eval_inputs["pixels"][:4]
    with ModelClient("digits_cnn", url=first.url(protocol), protocol=protocol, retry=PATIENT) as c:
        expected = c.infer({"pixels": pixels})["probabilities"]
        assert stop_maas_serve(first) == 0
        started: list[RunningServer] = []
        restart = threading.Thread(
            target=lambda: started.append(start_maas_serve(repo, tmp_path / "second", ports=ports))
        )
        began = time.monotonic()
        restart.start()
        try:
            during = c.infer({"pixels": pixels})["probabilities"]  # retried through the outage
            waited = time.monotonic() - began
        finally:
            restart.join()
            for server in started:
                stop_maas_serve(server)
    np.testing.assert_allclose(during, expected, atol=1e-6)
    assert waited > 1.0  # the call really spanned the restart


def test_waiting_for_readiness_returns_at_once_when_ready_and_fails_clearly_when_down(
    server: RunningServer, protocol: Protocol
) -> None:
    with ModelClient("digits_cnn", url=server.url(protocol), protocol=protocol) as client:
        client.wait_until_ready(timeout_s=5)
    nobody = f"127.0.0.1:{free_port()}"
    with (
        ModelClient("digits_cnn", url=nobody, protocol=protocol) as client,
        pytest.raises(ServerUnavailableError, match="was not ready within 1 s"),
    ):
        client.wait_until_ready(timeout_s=1)
