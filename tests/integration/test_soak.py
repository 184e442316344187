"""A 30-second soak of the session server: every model over both protocols, nothing fails."""

from __future__ import annotations

import json
from pathlib import Path

from maas.benchmarks.soak import SoakOptions, run_soak, verdict, write_soak_report
from tests.conftest import Exported, RunningServer


def test_a_short_soak_serves_every_model_on_both_protocols_without_a_failure(
    server: RunningServer, exported: Exported, tmp_path: Path
) -> None:
    models = ("digits_cnn", "digits_cnn_image", "resnet50", "resnet50_image", "minilm_text")
    options = SoakOptions(
        repository=exported.repository.root,
        duration_s=30,
        users=4,
        interval_s=3,
        out=tmp_path / "soak",
        http_url=server.http_url,
        grpc_url=server.grpc_url,
        models=models,  # the session's test models include ones that refuse long texts
    )
    result = run_soak(options)
    assert not result.failures, result.failures[:10]
    # memory is followed for Triton with its stubs (hundreds of MiB) and, apart, the gateway
    # (whose pools keep the buffers of earlier tests' bursts: smaller than Triton, not small)
    assert all(s.triton_rss_mib > 300 for s in result.samples), result.samples[:2]
    assert all(0 < s.front_rss_mib < s.triton_rss_mib for s in result.samples), result.samples[:2]
    for model in models:
        for protocol in ("http", "grpc"):
            assert result.calls.get(f"{model}/{protocol}", 0) > 0, result.calls
    assert len(result.samples) >= 10
    assert all(sample.triton_rss_mib > 0 and sample.front_rss_mib > 0 for sample in result.samples)
    checks = [ok for name, _, ok in verdict(result) if "memory" not in name]  # 30 s is too short
    assert all(checks), verdict(result)
    report = write_soak_report(result, "test")
    assert "0 of" in report.read_text()
    assert (tmp_path / "soak" / "soak.png").stat().st_size > 10_000
    rows = json.loads((tmp_path / "soak" / "report.json").read_text())
    assert sum(row["requests"] for row in rows) == result.requests
