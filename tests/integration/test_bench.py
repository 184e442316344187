"""`maas bench` against the real server: a complete report, counts that agree, failures reported.

These are smoke runs of a few seconds; they assert what the pipeline produced, never timings.
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

from maas.base.triton.repository import ModelRepository
from maas.benchmarks.baselines import in_process_limit, naive_service, pipeline
from maas.benchmarks.bench import BenchOptions, run_bench
from maas.benchmarks.workloads import build_workload
from maas.clients import ModelClient
from tests.conftest import Exported, RunningServer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def maas_bench(server: RunningServer, exported: Exported, out: Path, *args: str):  # type: ignore[no-untyped-def]
    command = [sys.executable, "-m", "maas.cli", "bench", *args, "--out", str(out)]
    command += ["--repository", str(exported.repository.root), "--stats-url", server.http_url]
    command += ["--duration", "2", "--warmup", "0.5", "--limit-seconds", "0.5"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_a_short_sweep_writes_a_complete_report_in_which_locust_and_triton_agree(
    server: RunningServer, exported: Exported, tmp_path: Path
) -> None:
    result = maas_bench(
        server, exported, tmp_path, "digits_cnn", "--url", server.grpc_url, "--protocol", "grpc",
        "--users", "1,3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    report = (tmp_path / "report.md").read_text()
    for section in ("| load | req/s |", "Server-side breakdown", "In-process limit", "## Machine"):
        assert section in report
    assert "No request failed." in report
    assert "counted the same successful requests at every level: yes" in report
    for plot in ("throughput", "latency", "breakdown"):
        assert (tmp_path / f"digits_cnn-grpc-{plot}.png").read_bytes().startswith(PNG_MAGIC)
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [row["level"] for row in rows] == ["1 users", "3 users"]
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["fingerprint"]["cores"] >= 1
    for level in document["runs"][0]["levels"]:
        served = {row["model"]: row for row in level["server"]}["digits_cnn"]
        assert level["requests"] > 0
        assert level["failures"] == 0
        assert level["locust_requests"] == level["requests"]
        assert served["requests"] == level["requests"]  # Triton counted exactly Locust's calls
        assert level["mean_ms"] >= served["request_ms"]  # the client's view includes the server's
        assert served["compute_infer_ms"] > 0


def test_shared_memory_runs_and_leaves_no_region_behind(
    server: RunningServer, exported: Exported, tmp_path: Path
) -> None:
    result = maas_bench(
        server, exported, tmp_path, "resnet50", "--url", server.http_url, "--shm", "--users", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert "over http + system shm" in result.stdout
    with urllib.request.urlopen(f"http://{server.http_url}/v2/systemsharedmemory/status") as r:
        assert json.load(r) == []
    assert not list(Path("/dev/shm").glob("maas_bench_*"))


def test_an_unreachable_offered_rate_is_reported_as_not_reached(
    server: RunningServer, exported: Exported, tmp_path: Path
) -> None:
    result = maas_bench(
        server, exported, tmp_path, "digits_cnn", "--url", server.http_url,
        "--users", "1", "--rate", "100000",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert "offered 100000/s was not held" in result.stdout
    assert "offered 100000/s was not held" in (tmp_path / "report.md").read_text()


def test_every_failed_request_is_counted_with_its_error_and_fails_the_command(
    server: RunningServer, exported: Exported, tmp_path: Path
) -> None:
    garbage = tmp_path / "not-an-image.jpg"
    garbage.write_bytes(b"this is not a JPEG")
    result = maas_bench(
        server, exported, tmp_path / "report", "resnet50_image", "--url", server.grpc_url,
        "--protocol", "grpc", "--users", "2", "--image", str(garbage), "--limit-seconds", "0",
    )  # fmt: skip
    assert result.returncode == 1
    assert "requests failed" in result.stderr
    document = json.loads((tmp_path / "report" / "results.json").read_text())
    (level,) = document["runs"][0]["levels"]
    assert level["requests"] == 0
    assert level["failures"] > 0
    assert level["locust_failures"] == level["failures"]
    (message,) = level["errors"]
    assert "is not a decodable image: no known image format" in message
    assert level["errors"][message] == level["failures"]


def test_a_model_the_repository_lacks_is_refused_before_any_load(
    server: RunningServer, exported: Exported, tmp_path: Path
) -> None:
    result = maas_bench(server, exported, tmp_path, "no_such_model", "--url", server.http_url)
    assert result.returncode == 1
    assert "model 'no_such_model' is not in" in result.stderr + result.stdout


@pytest.mark.parametrize("model", ["digits_cnn_image"])
def test_the_naive_baseline_service_answers_the_same_locust_users(
    exported: Exported, model: str
) -> None:
    repository = ModelRepository(exported.repository.root)
    with naive_service("digits_cnn", repository) as url:
        options = BenchOptions(
            model, protocol="naive", url=url, users=(2,), duration_s=1.0, warmup_s=0.5,
            repository=repository.root, limit_seconds=0.0,
        )  # fmt: skip
        (level,) = run_bench(options).levels
    assert level.requests > 0
    assert level.failures == 0
    assert level.server == []  # no Triton statistics for a service that is not Triton


def test_the_in_process_pipeline_computes_what_the_served_ensemble_computes(
    server: RunningServer, exported: Exported
) -> None:
    # The overhead goal compares the served ensemble with this pipeline: it must be the same work.
    workload = build_workload(exported.repository, "resnet50_image")
    _, call = pipeline(exported.repository, "resnet50_image")
    local = call()
    assert isinstance(local, dict)
    with ModelClient("resnet50_image", url=server.http_url) as client:
        served = client.infer(workload.requests[0])
    np.testing.assert_allclose(served["probabilities"], local["probabilities"], atol=2e-3)
    assert served["logits"].argmax() == local["logits"].argmax()


def test_token_payloads_are_what_the_served_tokenizer_makes(
    server: RunningServer, exported: Exported
) -> None:
    tensors = build_workload(exported.repository, "minilm")
    texts = build_workload(exported.repository, "minilm_text")
    assert len(tensors.requests) == len(texts.requests) > 50
    with ModelClient("minilm_tokenizer", url=server.http_url) as client:
        for index in (0, 17, len(texts.requests) - 1):
            served = client.infer(texts.requests[index])
            for name, values in tensors.requests[index].items():
                np.testing.assert_array_equal(served[name], values)


def test_the_limit_runs_the_served_artifact_at_the_formed_batch(exported: Exported) -> None:
    limit = in_process_limit(exported.repository, "minilm", batch=4, seconds=0.3, repeats=1)
    assert limit.batch == 4
    assert limit.batches > 0
    assert limit.samples_per_s > 0
