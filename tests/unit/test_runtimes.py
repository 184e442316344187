from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from maas.base.errors import RuntimeUnavailableError
from maas.base.runtimes import RuntimeOptions, load_runner, runtimes
from maas.base.runtimes.tensorrt_runner import check_environment
from maas.export.targets import TARGETS


def test_load_runner_lists_known_runtimes_when_name_is_unknown(tmp_path: Path) -> None:
    with pytest.raises(
        RuntimeUnavailableError, match="unknown runtime 'tflite'; known: onnxruntime"
    ):
        load_runner("tflite", tmp_path / "model.tflite")


def test_load_runner_says_when_the_artifact_is_missing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeUnavailableError, match="does not exist"):
        load_runner("onnxruntime", tmp_path / "model.onnx")


def test_every_target_runs_on_a_known_runtime() -> None:
    assert {target.runtime for target in TARGETS.values()} <= set(runtimes())


def test_tensorrt_targets_say_why_they_cannot_be_built_without_a_gpu() -> None:
    reason = TARGETS["tensorrt-fp16"].unavailable()
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        pytest.skip("a GPU is present; TensorRT availability depends on the tensorrt package")
    assert reason is not None and ("TensorRT" in reason or "CUDA" in reason)


def test_tensorrt_plan_is_refused_when_built_for_another_gpu(tmp_path: Path) -> None:
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"plan")
    (tmp_path / "model.plan.json").write_text('{"tensorrt": "10.3", "gpu": "NVIDIA A100"}')
    expected = r"built for another environment.*gpu: plan 'NVIDIA A100'"
    with pytest.raises(RuntimeUnavailableError, match=expected):
        check_environment(plan, {"tensorrt": "10.3", "gpu": "NVIDIA H100"})


def test_openvino_bf16_and_fp32_runners_agree_closely_on_a_real_model(tmp_path: Path) -> None:
    import torch

    from maas.export.targets import BuildContext, convert_openvino

    model = torch.nn.Sequential(
        torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)
    ).eval()
    onnx = tmp_path / "model.onnx"
    batch = {"input": {0: torch.export.Dim("batch")}}
    sample = (torch.zeros(2, 16),)
    torch.onnx.export(
        model, sample, str(onnx), input_names=["x"], output_names=["y"], dynamic_shapes=batch
    )
    convert_openvino(BuildContext(None, onnx, tmp_path, {}))  # type: ignore[arg-type]
    x = {"x": np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)}
    fp32 = load_runner("openvino", tmp_path / "model.xml", RuntimeOptions("fp32")).infer(x)["y"]
    bf16 = load_runner("openvino", tmp_path / "model.xml", RuntimeOptions("bf16")).infer(x)["y"]
    with torch.no_grad():
        expected = model(torch.from_numpy(x["x"])).numpy()
    np.testing.assert_allclose(fp32, expected, atol=1e-5)
    np.testing.assert_allclose(bf16, expected, atol=5e-2)  # bf16 keeps 8 bits of mantissa
