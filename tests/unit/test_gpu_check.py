"""The GPU check's parts that run anywhere: the pack's weights and size rule, the report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from maas.base.errors import BenchmarkError, MaasError
from maas.benchmarks import gpu_pack
from maas.benchmarks.gpu_check import CheckOptions, Report, cosines, split_rows, stub_python_path


def test_packed_weights_are_bf16_exact_and_keep_only_the_used_embedding_rows(
    tmp_path: Path,
) -> None:
    generator = torch.Generator().manual_seed(0)
    original = {
        "embeddings.word_embeddings.weight": torch.randn(6, 4, generator=generator),
        "encoder.layer.0.weight": torch.randn(4, 4, generator=generator),
        "embeddings.position_ids": torch.arange(4),
    }
    save_file(original, str(tmp_path / "full.safetensors"))
    gpu_pack.compressible_weights(tmp_path / "full.safetensors", {0, 3}, tmp_path / "packed")
    packed = load_file(str(tmp_path / "packed"))
    layer = packed["encoder.layer.0.weight"]
    assert layer.dtype == torch.float32
    # What the bf16 runner computes with is unchanged: rounding to bf16 again is exact.
    expected = original["encoder.layer.0.weight"].to(torch.bfloat16)
    assert torch.equal(layer.to(torch.bfloat16), expected)
    assert torch.equal(layer, expected.float())
    words = packed["embeddings.word_embeddings.weight"]
    kept = original["embeddings.word_embeddings.weight"].to(torch.bfloat16).float()
    assert torch.equal(words[[0, 3]], kept[[0, 3]])
    assert not words[[1, 2, 4, 5]].any()
    assert torch.equal(packed["embeddings.position_ids"], original["embeddings.position_ids"])


def test_the_pack_is_refused_when_tree_and_pack_exceed_what_a_device_call_carries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pack").mkdir()
    (tmp_path / "pack" / "big.bin").write_bytes(b"x" * 2048)
    monkeypatch.setattr(gpu_pack, "tree_bytes", lambda tree: 1024)
    monkeypatch.setattr(gpu_pack, "CARRY_LIMIT", 4096)
    manifest = gpu_pack.write_manifest(tmp_path / "pack", tmp_path)
    assert manifest["carried_bytes"] == 3072
    assert json.loads((tmp_path / "pack" / "manifest.json").read_text())["pack_bytes"] == 2048
    monkeypatch.setattr(gpu_pack, "CARRY_LIMIT", 3000)
    with pytest.raises(BenchmarkError, match="a device call carries 64 MiB"):
        gpu_pack.write_manifest(tmp_path / "pack", tmp_path)


def test_cosines_are_row_wise_and_shapes_must_match() -> None:
    expected = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    actual = np.array([[1.0, 1.0], [0.0, 5.0]], dtype=np.float32)
    np.testing.assert_allclose(cosines(expected, actual), [np.sqrt(0.5), 1.0], rtol=1e-6)
    with pytest.raises(MaasError, match="reference has shape"):
        cosines(expected, actual[:1])


def test_rows_become_single_row_requests_in_order() -> None:
    inputs = {"ids": np.arange(6).reshape(3, 2), "mask": np.ones((3, 2))}
    rows = split_rows(inputs)
    assert [row["ids"].tolist() for row in rows] == [[[0, 1]], [[2, 3]], [[4, 5]]]


def test_a_failing_step_is_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    report = Report(CheckOptions(out=tmp_path, work=tmp_path / "work"))
    with report.step("export"):
        raise MaasError("not accepted: minilm")
    with report.step("in process") as step:
        step.reason = "the export failed"
    report.write()
    steps = json.loads((tmp_path / "report.json").read_text())["steps"]
    assert [(s["name"], s["status"], s["reason"]) for s in steps] == [
        ("export", "failed", "MaasError: not accepted: minilm"),
        ("in process", "not run", "the export failed"),
    ]
    assert "| export | failed |" in (tmp_path / "report.md").read_text()


def test_the_stubs_path_is_set_while_triton_starts_and_restored_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", "/site")
    with stub_python_path(tmp_path):
        assert os.environ["PYTHONPATH"] == f"{tmp_path}{os.pathsep}/site"
    assert os.environ["PYTHONPATH"] == "/site"
