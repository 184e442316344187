"""A tiny BERT with random weights, saved as a real Hugging Face folder, built offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertModel

from maas.export.models.minilm import packaged_model_dir

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
LABELS = {0: "negative", 1: "neutral", 2: "positive"}


def make_tiny_bert(folder: Path, task: str, seed: int = 0) -> Path:
    """Save a 2-layer, 32-wide BERT (with MiniLM's real WordPiece tokenizer) into folder."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
        id2label=LABELS,
        label2id={label: index for index, label in LABELS.items()},
    )
    model = (
        BertForSequenceClassification(config)
        if task == "text-classification"
        else BertModel(config)
    )
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copyfile(packaged_model_dir() / name, folder / name)
    return folder
