"""The peers benchmark against real peers: each computes what maas serves; the harness runs.

Every peer installed here (BentoML and Ray Serve from the dev extras; TorchServe where Java is)
is started on the exported repository and must answer each task as the real `maas serve`
answers it: same top class and probabilities for ResNet-50, the same embedding for MiniLM.
A seconds-long `maas bench-peers` run checks the harness end to end; no timing is asserted.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from maas.benchmarks.peers import wire
from maas.benchmarks.peers.launch import LAUNCHERS, running
from maas.benchmarks.peers.tasks import TASKS, PeerTask
from maas.benchmarks.peers.work import PeerEnvironment
from maas.benchmarks.workloads import Inputs, build_workload
from maas.clients import ModelClient
from tests.conftest import Exported, RunningServer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REQUESTS = 3  # per task: different sentences for MiniLM, the photograph for ResNet-50


def peer_or_skip(name: str) -> None:
    reason = LAUNCHERS[name].missing()
    if reason:
        pytest.skip(f"{LAUNCHERS[name].title} cannot run here: {reason}")


def call_peer(peer: str, url: str, task: PeerTask, inputs: Inputs) -> dict[str, np.ndarray]:
    request = wire.encode(peer, task, inputs)
    sent = urllib.request.Request(f"http://{url}{request.path}", request.body, request.headers)
    with urllib.request.urlopen(sent, timeout=60) as response:
        answer = wire.decode(response.status, response.read())
    if peer == "bentoml":  # batchable APIs answer a batch of one
        assert isinstance(answer, list) and len(answer) == 1
        answer = answer[0]
        if task.kind == "image-tensor":  # [2, 1000]: logits and probabilities
            return {"logits": np.asarray(answer[0]), "probabilities": np.asarray(answer[1])}
        if task.kind == "text":
            return {"embeddings": np.asarray(answer)}
    assert isinstance(answer, dict)
    return {name: np.asarray(values) for name, values in answer.items()}


@pytest.mark.parametrize("task_name", list(TASKS))
@pytest.mark.parametrize("peer", list(LAUNCHERS))
def test_each_peer_answers_what_maas_serves(
    peer: str, task_name: str, server: RunningServer, exported: Exported, tmp_path: Path
) -> None:
    peer_or_skip(peer)
    task = TASKS[task_name]
    requests = build_workload(exported.repository, task.maas_model).requests[:REQUESTS]
    with ModelClient(task.maas_model, url=server.url("grpc"), protocol="grpc") as client:
        served = [client.infer(inputs) for inputs in requests]
    launcher = LAUNCHERS[peer]
    setting = launcher.settings()[0]
    env = PeerEnvironment(exported.repository.root, task.name, setting.threads)
    with running(launcher, setting, env, tmp_path) as started:
        answers = [call_peer(peer, started.url, task, inputs) for inputs in requests]
    for expected, answer in zip(served, answers, strict=True):
        if task.kind == "text":
            mine, theirs = answer["embeddings"].reshape(-1), expected["embeddings"].reshape(-1)
            cosine = mine @ theirs / np.linalg.norm(mine) / np.linalg.norm(theirs)
            assert cosine > 0.999
            continue
        probabilities = expected["probabilities"].reshape(-1)
        assert answer["probabilities"].argmax() == probabilities.argmax()
        np.testing.assert_allclose(answer["probabilities"], probabilities, atol=2e-3)
        np.testing.assert_allclose(answer["logits"], expected["logits"].reshape(-1), atol=0.1)


def test_a_short_peers_run_writes_the_report_with_every_system_measured(
    exported: Exported, tmp_path: Path
) -> None:
    peer_or_skip("bentoml")
    command = [sys.executable, "-m", "maas.cli", "bench-peers", "--tasks", "minilm-text"]
    command += ["--peers", "bentoml", "--users", "1,2", "--rates", "40", "--duration", "1"]
    command += ["--warmup", "0.5", "--no-every-setting", "--no-naive", "--out", str(tmp_path)]
    command += ["--repository", str(exported.repository.root)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout
    assert "minilm-text saturation throughput" in result.stdout
    report = (tmp_path / "report.md").read_text()
    for section in ("## Goals", "## minilm-text", "### Saturation", "open loop", "## Machine"):
        assert section in report
    assert "BentoML: bentoml 1.4.40" in report
    document = json.loads((tmp_path / "results.json").read_text())
    runs = document["runs"]
    assert sorted((run["system"], run["setting"][:4]) for run in runs) == [
        ("bentoml", "1 wo"),
        ("maas", "HTTP"),
        ("maas", "gRPC"),
    ]  # maas over both protocols, the better compared
    assert sum(run["chosen"] for run in runs if run["system"] == "maas") == 1
    for run in runs:
        assert [level["level"]["users"] for level in run["levels"]] == [1, 2, 32]
        for level in run["levels"]:
            assert level["requests"] > 0 and level["failures"] == 0
            assert level["server_cpu_ms"] > 0 and level["server_peak_rss_mib"] > 50
    for level in [lv for run in runs if run["system"] == "maas" for lv in run["levels"]]:
        served = {row["model"]: row["requests"] for row in level["server"]}
        assert served["minilm_text"] == level["requests"]
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(rows) == 9  # three runs of three levels
    for plot in ("minilm-text-closed.png", "minilm-text-open.png"):
        assert (tmp_path / plot).read_bytes().startswith(PNG_MAGIC)
