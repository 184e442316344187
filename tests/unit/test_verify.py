from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from maas.base.errors import VerificationError
from maas.export import ModelRepository, export_model
from maas.export.onnx_export import export_onnx
from maas.export.spec import BuiltModel, ModelSpec, TensorSpec, Tolerance
from maas.export.verify import compare, onnxruntime_runner, torch_runner, verify


class TinyClassifier(torch.nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.linear = torch.nn.Linear(6, 4)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.linear(features)
        return logits, torch.softmax(logits, dim=-1)


class ExportsSomethingElse(TinyClassifier):
    """Computes different numbers when traced for export than in eager mode."""

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.linear(features)
        if torch.compiler.is_compiling():
            logits = logits.flip(-1) * 3.0
        return logits, torch.softmax(logits, dim=-1)


INPUTS = np.random.default_rng(0).standard_normal((32, 6)).astype(np.float32)


def tiny_spec(build: type[TinyClassifier] = TinyClassifier) -> ModelSpec:
    return ModelSpec(
        name="tiny",
        description="test model",
        weights="random",
        task="image-classification",
        build=lambda: BuiltModel(build(0).eval(), ["a", "b", "c", "d"], {"features": INPUTS}),
        inputs=(TensorSpec("features", (6,)),),
        outputs=(TensorSpec("logits", (4,)), TensorSpec("probabilities", (4,))),
        tolerance=Tolerance(atol=1e-5, rtol=1e-4, min_top1_agreement=1.0),
    )


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "model.onnx"
    export_onnx(tiny_spec(), TinyClassifier(0).eval(), {"features": INPUTS}, path)
    return path


def test_verify_passes_when_artifact_matches_its_source(tiny_onnx: Path) -> None:
    spec = tiny_spec()
    report = verify(
        spec,
        torch_runner(spec, TinyClassifier(0).eval()),
        onnxruntime_runner(str(tiny_onnx)),
        {"features": INPUTS},
    )
    assert report.top1_agreement == 1.0
    assert report.samples == len(INPUTS)
    assert all(output.max_abs_error < 1e-5 for output in report.outputs)


def test_verify_names_every_failing_output_when_source_differs(tiny_onnx: Path) -> None:
    spec = tiny_spec()
    wrong = torch_runner(spec, TinyClassifier(seed=1).eval())  # other weights: a wrong model
    with pytest.raises(VerificationError) as caught:
        verify(spec, wrong, onnxruntime_runner(str(tiny_onnx)), {"features": INPUTS})
    message = str(caught.value)
    assert "output 'logits'" in message
    assert "output 'probabilities'" in message
    assert "top-1 agreement" in message
    assert len(caught.value.failures) == 3


def test_compare_reports_missing_output_when_artifact_lacks_it(tiny_onnx: Path) -> None:
    spec = tiny_spec()
    runner = onnxruntime_runner(str(tiny_onnx))
    report = compare(
        spec,
        torch_runner(spec, TinyClassifier(0).eval()),
        lambda x: {"logits": runner(x)["logits"]},
        {"features": INPUTS},
    )
    assert any("'probabilities' is missing" in failure for failure in report.failures)


def test_export_model_writes_nothing_when_the_onnx_graph_is_wrong(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path)
    with pytest.raises(VerificationError, match="tiny: verification failed"):
        export_model(tiny_spec(ExportsSomethingElse), repository, targets=["onnxruntime-fp32"])
    assert not (tmp_path / "tiny").exists()
    assert not repository.manifest_path.exists()


def test_export_model_writes_config_labels_artifact_and_manifest_when_verified(
    tmp_path: Path,
) -> None:
    repository = ModelRepository(tmp_path)
    result = export_model(tiny_spec(), repository, targets=["onnxruntime-fp32"])
    assert result.artifact == tmp_path / "tiny" / "1" / "model.onnx"
    assert result.target.name == "onnxruntime-fp32"
    assert repository.read_config("tiny").name == "tiny"
    assert (tmp_path / "tiny" / "labels.txt").read_text().split() == ["a", "b", "c", "d"]
    assert result.models == ("tiny",)  # no preprocessing: no ensemble
    assert repository.manifest_path.is_file()
