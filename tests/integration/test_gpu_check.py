"""The GPU check's script runs its steps end to end on a CPU target (what a device would run).

On a lent GPU the same steps export with torch-cuda-bf16 and serve on KIND_GPU instances
(benchmarks/gpu_check.sh); here the ONNX Runtime target stands in, so that every step but the
GPU's own is exercised: the real exporter, the adapter's runner in process, a real tritonserver
over gRPC, and the report.
"""

from __future__ import annotations

import json
from pathlib import Path

from maas.benchmarks import gpu_check


def test_the_check_exports_measures_serves_and_reports_on_a_cpu_target(tmp_path: Path) -> None:
    code = gpu_check.main(
        [
            "--out", str(tmp_path), "--target", "onnxruntime-fp32",
            "--models", "digits_cnn", "--measured", "digits_cnn",
            "--batches", "1", "4", "--seconds", "0.3",
        ]
    )  # fmt: skip
    report = json.loads((tmp_path / "report.json").read_text())
    steps = {step["name"]: step for step in report["steps"]}
    assert steps["export"]["status"] == "passed"
    assert steps["export"]["detail"]["digits_cnn"]["status"] == "accepted"
    assert steps["sentence-transformers reference"]["status"] == "not run"
    alone = steps["in process"]["detail"]["digits_cnn"]
    assert [speed["batch"] for speed in alone["speeds"]] == [1, 4]
    assert all(speed["samples_per_s"] > 0 for speed in alone["speeds"])
    served = steps["served over gRPC"]
    assert "digits_cnn: python adapter" in served["detail"]["served_models"]
    measured = served["detail"]["digits_cnn"]
    assert measured["batch_1"]["batch"] == 1 and measured["best"]["batch"] == alone["best_batch"]
    assert measured["batch_1"]["samples_per_s"] > 0 and measured["ratio_best"] > 0
    # The goal decides the step and the exit code; a CPU run may miss it, but must say so.
    missed = measured["ratio_best"] < gpu_check.SERVED_GOAL
    assert (served["status"] == "failed") == missed and (code == 1) == missed
    assert "| digits_cnn | b1:" in (tmp_path / "report.md").read_text()
