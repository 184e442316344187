from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from maas.base.errors import RepositoryError, ServerError
from maas.export import ModelRepository, get_spec
from maas.export import triton_config as tc
from maas.export.targets import TARGETS
from maas.serve.serving_repo import build_serving_repository


def canonical_repository(root: Path) -> ModelRepository:
    """digits_cnn's configs as export writes them, with a stand-in artifact file."""
    spec = get_spec("digits_cnn")
    assert spec.preprocessing is not None
    repository = ModelRepository(root)
    repository.write_config(tc.model_config(spec, TARGETS["onnxruntime-fp32"]))
    repository.write_labels(spec.name, [str(i) for i in range(10)])
    repository.version_dir(spec.name, 1).mkdir(parents=True)
    (repository.version_dir(spec.name, 1) / "model.onnx").write_bytes(b"onnx bytes")
    repository.write_config(tc.preprocess_config(spec, spec.preprocessing))
    return repository


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_adapter_keeps_name_io_batching_and_instances_when_backend_is_missing(
    tmp_path: Path,
) -> None:
    canonical = canonical_repository(tmp_path / "canonical")
    served = build_serving_repository(canonical, tmp_path / "served")
    original = canonical.read_config("digits_cnn")
    adapted = ModelRepository(tmp_path / "served").read_config("digits_cnn")
    assert {model.name: model.served_by for model in served} == {
        "digits_cnn": "python adapter",
        "digits_cnn_preprocess": "native",
    }
    assert adapted.backend == "python" and adapted.platform == ""
    assert adapted.parameters["artifact"].string_value == "model.onnx"
    assert adapted.parameters["runtime"].string_value == "onnxruntime"
    assert adapted.parameters["padding_strategy"].string_value == "buckets"
    for field in (
        "name",
        "input",
        "output",
        "max_batch_size",
        "dynamic_batching",
        "instance_group",
    ):
        assert getattr(adapted, field) == getattr(original, field), field
    version = tmp_path / "served" / "digits_cnn" / "1"
    assert (version / "model.onnx").resolve() == (
        canonical.version_dir("digits_cnn", 1) / "model.onnx"
    ).resolve()
    assert "class TritonPythonModel" in (version / "model.py").read_text()
    assert (tmp_path / "served" / "digits_cnn" / "labels.txt").read_text().split()[0] == "0"


def test_canonical_repository_is_unchanged_when_serving_repository_is_built(tmp_path: Path) -> None:
    canonical = canonical_repository(tmp_path / "canonical")
    before = tree_digest(canonical.root)
    build_serving_repository(canonical, tmp_path / "served")
    assert tree_digest(canonical.root) == before


def test_serving_refuses_with_advice_when_a_backend_has_no_adapter(tmp_path: Path) -> None:
    canonical = canonical_repository(tmp_path / "canonical")
    canonical.write_config(mc.ModelConfig(name="ts", platform="pytorch_libtorch", max_batch_size=4))
    with pytest.raises(ServerError, match=r"needs the pytorch backend.*NVIDIA's Triton container"):
        build_serving_repository(canonical, tmp_path / "served")


def test_serving_says_to_export_when_an_artifact_is_missing(tmp_path: Path) -> None:
    canonical = canonical_repository(tmp_path / "canonical")
    (canonical.version_dir("digits_cnn", 1) / "model.onnx").unlink()
    with pytest.raises(
        RepositoryError, match=r"model\.onnx is missing; run `maas export digits_cnn`"
    ):
        build_serving_repository(canonical, tmp_path / "served")


def test_serving_says_to_export_when_repository_is_empty(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RepositoryError, match="holds no models; run `maas export`"):
        build_serving_repository(ModelRepository(tmp_path / "empty"), tmp_path / "served")
