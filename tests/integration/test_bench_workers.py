"""`maas bench --workers 2`: Locust's master and two worker processes against the real server.

Every call a worker reports must be one Triton answered, the workers' windows must add up to the
level's counts, and the report must have the form of a one-process run's.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import Exported, RunningServer
from tests.integration.server_metrics import request_counts

MODEL = "digits_cnn"
PER_WORKER = re.compile(r"per worker: ([\d +]+) ok in the window, ([\d +]+) ok since start")


def maas_bench(server: RunningServer, exported: Exported, out: Path, workers: int):  # type: ignore[no-untyped-def]
    command = [sys.executable, "-m", "maas.cli", "bench", MODEL, "--out", str(out)]
    command += ["--url", server.grpc_url, "--protocol", "grpc", "--users", "2,4"]
    command += ["--repository", str(exported.repository.root), "--stats-url", server.http_url]
    command += ["--duration", "2", "--warmup", "0.5", "--limit-seconds", "0"]
    command += ["--workers", str(workers)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr + result.stdout
    return result


def per_worker(stderr: str) -> list[tuple[list[int], list[int]]]:
    """For each level: each worker's calls in the window, and since it started."""
    return [
        ([int(n) for n in window.split("+")], [int(n) for n in run.split("+")])
        for window, run in PER_WORKER.findall(stderr)
    ]


def levels_of(folder: Path) -> list[dict]:
    document = json.loads((folder / "results.json").read_text())
    levels: list[dict] = document["runs"][0]["levels"]
    return levels


def test_two_workers_share_the_load_triton_answered_their_calls_and_the_report_keeps_its_form(
    server: RunningServer, exported: Exported, tmp_path: Path
) -> None:
    before = request_counts(server, MODEL).succeeded
    one, two = tmp_path / "one", tmp_path / "two"
    result = maas_bench(server, exported, two, workers=2)
    answered = request_counts(server, MODEL).succeeded - before
    workers = per_worker(result.stderr)
    assert len(workers) == 2, result.stderr  # one line per level
    *_, (_, since_start) = workers
    assert len(since_start) == 2
    assert all(calls > 0 for calls in since_start)  # both workers sent requests
    assert sum(since_start) == answered  # warm-ups included; nothing lost or counted twice
    for (window, _), level in zip(workers, levels_of(two), strict=True):
        served = {row["model"]: row for row in level["server"]}[MODEL]
        assert all(calls > 0 for calls in window)
        assert sum(window) == level["requests"] == served["requests"]
        assert level["locust_requests"] == level["requests"]  # Locust's counters, via the master
        assert level["failures"] == 0
    assert "users spread over 2 Locust worker processes" in (two / "report.md").read_text()
    # The same run's report has the form of a one-process run's (one bench run fewer in CI).
    maas_bench(server, exported, one, workers=1)
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in two.iterdir())
    with (one / "results.csv").open() as a, (two / "results.csv").open() as b:
        assert next(csv.reader(a)) == next(csv.reader(b))
    for level_one, level_two in zip(levels_of(one), levels_of(two), strict=True):
        assert level_one.keys() == level_two.keys()
        assert level_one["level"] == level_two["level"]

    def skeleton(folder: Path) -> list[str]:
        text = (folder / "report.md").read_text()
        return [line for line in text.splitlines() if line.startswith(("#", "| load", "!["))]

    assert skeleton(one) == skeleton(two)
