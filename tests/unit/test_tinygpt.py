"""tinygpt: the decoder step graph with its key/value cache, against torch and `generate`.

Most tests export a small tinygpt (SMALL, trained for seconds) once per module; the one marked
`slow` trains and exports the registered spec itself (about two minutes on 2 cores).
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from transformers import AutoTokenizer, GPT2LMHeadModel

from maas.base.errors import ExportError, VerificationError
from maas.base.triton.config import string_parameters
from maas.base.triton.parameters import ModelParameters
from maas.export import ExportResult, ModelRepository, export_model, get_spec
from maas.export.generation import (
    left_pad,
    next_inputs,
    prefill_inputs,
    verify_cached_generation,
)
from maas.export.models.tinygpt import (
    GENERATION_FILE,
    HF_FOLDER,
    RECIPE,
    Recipe,
    tinygpt_spec,
    train_tinygpt,
)

SMALL = Recipe(
    vocab_size=512, layers=2, width=64, heads=4, positions=64, steps=40, batch=8, block=32
)
NAME = "tinygpt_small"
PROMPTS = ("The with statement", "Exceptions are raised when an error is detected")
NEW_TOKENS = 12


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRepository, ExportResult]:
    repository = ModelRepository(tmp_path_factory.mktemp("repository"))
    return repository, export_model(tinygpt_spec(SMALL, NAME), repository)


@pytest.fixture(scope="module")
def version_dir(exported: tuple[ModelRepository, ExportResult]) -> Path:
    repository, _ = exported
    return repository.version_dir(NAME, 1)


def greedy_with_onnx(
    onnx_path: Path, prompts: list[list[int]], pad_id: int, eos_id: int, layers: int, steps: int
) -> list[list[int]]:
    """The reference loop: one left-padded prefill, then one token per row per step."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    cache = tinygpt_spec(SMALL, NAME).cache
    assert cache is not None and cache.layers == layers
    ids, mask = left_pad(prompts, pad_id)
    feed = prefill_inputs(cache, ids, mask)
    generated: list[list[int]] = [[] for _ in prompts]
    for _ in range(steps):
        outputs = dict(zip(names, session.run(names, feed), strict=True))
        tokens = outputs["logits"][:, -1].argmax(axis=-1)
        for row, token in enumerate(tokens):
            generated[row].append(int(token))
        feed = next_inputs(cache, feed, outputs, tokens)
    return [until_eos(row, eos_id) for row in generated]


def until_eos(tokens: list[int], eos_id: int) -> list[int]:
    return tokens[: tokens.index(eos_id) + 1] if eos_id in tokens else tokens


def test_export_writes_the_step_graph_hf_folder_generation_settings_and_config(
    exported: tuple[ModelRepository, ExportResult], version_dir: Path
) -> None:
    repository, result = exported
    assert result.target.name == "onnxruntime-fp32"
    assert (version_dir / "model.onnx").is_file()
    assert (version_dir / HF_FOLDER / "model.safetensors").is_file()
    tokenizer_json = (version_dir / HF_FOLDER / "tokenizer.json").read_bytes()
    assert (version_dir / "tokenizer.json").read_bytes() == tokenizer_json
    settings = json.loads((version_dir / GENERATION_FILE).read_text())
    assert settings == {
        "layers": 2, "heads": 4, "head_dim": 16, "vocab": 512, "max_positions": 64,
        "eos_token_id": 0, "pad_token_id": 0, "bos_token_id": 0,
    }  # fmt: skip
    config = repository.read_config(NAME)
    assert ModelParameters.read(string_parameters(config)).task == "text-generation"
    assert config.parameters["maas_task"].string_value == "text-generation"
    assert [i.name for i in config.input][:3] == ["input_ids", "attention_mask", "position_ids"]
    assert result.models == (NAME, NAME + "_generate")  # the step and its service, no more


def test_step_graph_names_its_inputs_outputs_and_dynamic_axes(version_dir: Path) -> None:
    graph = onnx.load(str(version_dir / "model.onnx")).graph

    def dims(values: object) -> dict[str, list[object]]:
        return {
            v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in values  # type: ignore[attr-defined]
        }

    inputs, outputs = dims(graph.input), dims(graph.output)
    assert inputs["input_ids"] == ["batch", "seq"]
    assert inputs["attention_mask"] == ["batch", "past_seq"]
    assert inputs["position_ids"] == ["batch", "seq"]
    assert inputs["past_key_values.1.value"] == ["batch", 4, "past", 16]
    assert outputs["logits"] == ["batch", "seq", 512]
    assert outputs["present.0.key"] == ["batch", 4, "past + seq", 16]
    assert len(inputs) == 3 + 2 * SMALL.layers and len(outputs) == 1 + 2 * SMALL.layers


def test_onnx_step_equals_torch_when_prefilling_left_padded_rows_and_decoding_with_cache(
    exported: tuple[ModelRepository, ExportResult], version_dir: Path
) -> None:
    _, result = exported
    tokenizer = AutoTokenizer.from_pretrained(version_dir / HF_FOLDER)
    prompts = [tokenizer.encode(prompt) for prompt in PROMPTS]
    assert len(prompts[0]) != len(prompts[1])
    report = verify_cached_generation(
        result.spec, result.built.module, version_dir / "model.onnx", prompts, steps=3
    )
    assert report.top1_agreement == 1.0
    assert report.outputs[0].name == "cached logits"
    assert all(c.max_abs_error < 1e-4 for c in report.outputs)


def test_cached_check_raises_verification_error_when_the_graph_disagrees_with_torch(
    exported: tuple[ModelRepository, ExportResult], version_dir: Path
) -> None:
    _, result = exported
    changed = copy.deepcopy(result.built.module)
    with torch.no_grad():
        changed.get_parameter("model.transformer.ln_f.bias").add_(0.5)
    with pytest.raises(VerificationError, match="cached logits: max abs error"):
        verify_cached_generation(result.spec, changed, version_dir / "model.onnx", [[5, 6, 7], [8]])


def test_greedy_decoding_with_the_onnx_step_equals_generate_token_for_token(
    version_dir: Path,
) -> None:
    model = GPT2LMHeadModel.from_pretrained(version_dir / HF_FOLDER).eval()
    tokenizer = AutoTokenizer.from_pretrained(version_dir / HF_FOLDER)
    settings = json.loads((version_dir / GENERATION_FILE).read_text())
    prompts = [tokenizer.encode(prompt) for prompt in PROMPTS]
    expected = []
    for prompt in prompts:
        ids = torch.tensor([prompt])
        with torch.no_grad():
            out = model.generate(
                ids, attention_mask=torch.ones_like(ids), do_sample=False,
                max_new_tokens=NEW_TOKENS, pad_token_id=settings["pad_token_id"],
            )  # fmt: skip
        expected.append(until_eos(out[0, len(prompt) :].tolist(), settings["eos_token_id"]))
    actual = greedy_with_onnx(
        version_dir / "model.onnx",
        prompts,
        settings["pad_token_id"],
        settings["eos_token_id"],
        settings["layers"],
        NEW_TOKENS,
    )
    assert actual == expected


def test_training_gives_identical_weights_and_tokenizer_when_run_twice() -> None:
    recipe = replace(SMALL, steps=5)
    first_model, first_tokenizer, first_loss = train_tinygpt(recipe)
    second_model, second_tokenizer, second_loss = train_tinygpt(recipe)
    assert first_loss == second_loss
    assert first_tokenizer.backend_tokenizer.to_str() == second_tokenizer.backend_tokenizer.to_str()
    second = second_model.state_dict()
    for name, tensor in first_model.state_dict().items():
        assert torch.equal(tensor, second[name]), name


def test_export_refuses_targets_the_spec_does_not_allow(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="cannot be served with openvino-bf16"):
        export_model(
            tinygpt_spec(SMALL, NAME), ModelRepository(tmp_path), targets=["openvino-bf16"]
        )


def test_registered_tinygpt_matches_the_default_recipe() -> None:
    spec = get_spec("tinygpt")
    assert spec.task == "text-generation" and spec.cache == RECIPE.cache
    assert spec.targets == ("onnxruntime-fp32",)
    assert spec.classification_output is None and spec.embedding_output is None
    assert f"{RECIPE.steps} steps, seed {RECIPE.seed}" in spec.weights


@pytest.mark.slow
def test_real_tinygpt_exports_and_writes_readable_greedy_text(tmp_path: Path) -> None:
    # Slow: trains the registered recipe (about 90 s on 2 cores) and exports it.
    repository = ModelRepository(tmp_path)
    result = export_model(get_spec("tinygpt"), repository)
    folder = repository.version_dir("tinygpt", 1)
    assert result.report.top1_agreement == 1.0
    model = GPT2LMHeadModel.from_pretrained(folder / HF_FOLDER).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder / HF_FOLDER)
    ids = torch.tensor([tokenizer.encode("The with statement")])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=20, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    words = str(tokenizer.decode(out[0].tolist())).split()
    assert sum(word.strip('.,:"()').isalpha() for word in words) >= len(words) // 2
    assert np.isfinite(result.report.outputs[0].max_abs_error)
