"""The maximum length of an exported text model (README: Export): at most 512 tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maas.export.spec import TextPreprocessing
from maas.export.text import hf_text_spec

README_CAP = 512  # "either way at most 512 tokens"


def max_length(folder: Path) -> int:
    """The length the exported model's tokenizer cuts (or refuses) texts at."""
    preprocessing = hf_text_spec(folder, "feature-extraction", "encoder").preprocessing
    assert isinstance(preprocessing, TextPreprocessing)
    return preprocessing.max_length


def encoder_folder(folder: Path, **files: dict[str, object]) -> Path:
    """A Hugging Face folder's JSON files: enough for a spec, which reads nothing else."""
    files.setdefault("config", {"hidden_size": 8, "max_position_embeddings": 2048})
    for stem, content in files.items():
        (folder / f"{stem}.json").write_text(json.dumps(content))
    return folder


@pytest.mark.parametrize(("declared", "served"), [(1024, README_CAP), (256, 256), (512, 512)])
def test_max_seq_length_from_sentence_bert_config_is_used_up_to_the_cap(
    tmp_path: Path, declared: int, served: int
) -> None:
    folder = encoder_folder(tmp_path, sentence_bert_config={"max_seq_length": declared})
    assert max_length(folder) == served


def test_without_sentence_bert_config_the_tightest_of_model_tokenizer_and_cap_wins(
    tmp_path: Path,
) -> None:
    folder = encoder_folder(tmp_path, tokenizer_config={"model_max_length": 10**30})
    assert max_length(folder) == README_CAP
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 128}))
    assert max_length(folder) == 128
