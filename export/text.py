"""Text encoders from a local Hugging Face folder: one spec builder for every text model."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Literal

import torch
import transformers
from torch import nn

from maas.base.errors import ExportError
from maas.base.sentences import SENTENCES
from maas.base.served.text import TOKENIZER_FILE, TextTokenizer

from .spec import Batching, BuiltModel, Inputs, ModelSpec, TensorSpec, TextPreprocessing, Tolerance

TextTask = Literal["feature-extraction", "text-classification"]
TEXT_TASKS: tuple[TextTask, ...] = ("feature-extraction", "text-classification")
MAX_LENGTH_CAP = 512
TEXT_BATCHING = Batching(max_batch_size=64, preferred_batch_sizes=(16, 32))
TEXT_INPUTS = (
    TensorSpec("input_ids", (-1,), dtype="int64"),
    TensorSpec("attention_mask", (-1,), dtype="int64"),
)


class MeanPooledEmbedder(nn.Module):
    """Encoder → mean over real tokens → L2 normalisation, all inside the graph."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Return unit-length sentence embeddings."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2.0, dim=1)


class SequenceClassifier(nn.Module):
    """Sequence classification head exposed as logits and softmax."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return logits and class probabilities."""
        logits = self.classifier(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits, torch.softmax(logits, dim=-1)


def text_task(task: str) -> TextTask:
    """Check a task name given by a user."""
    if task == "feature-extraction":
        return "feature-extraction"
    if task == "text-classification":
        return "text-classification"
    raise ExportError(f"task must be one of {', '.join(TEXT_TASKS)}, got {task!r}")


def read_json(path: Path) -> dict[str, object]:
    """A JSON object from a file, or {} when the file is absent."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else {}


def max_length_of(folder: Path) -> int:
    """sentence-transformers' max_seq_length where present, else what the model allows; ≤ 512."""
    sentence_config = read_json(folder / "sentence_bert_config.json")
    if "max_seq_length" in sentence_config:
        return min(MAX_LENGTH_CAP, int(str(sentence_config["max_seq_length"])))
    config = read_json(folder / "config.json")
    tokenizer_config = read_json(folder / "tokenizer_config.json")
    limits = [MAX_LENGTH_CAP, int(str(config.get("max_position_embeddings", MAX_LENGTH_CAP)))]
    if "model_max_length" in tokenizer_config:
        limits.append(int(str(tokenizer_config["model_max_length"])))
    return min(limits)


def labels_of(config: dict[str, object]) -> list[str]:
    """Class names from id2label, in index order."""
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise ExportError("text-classification needs id2label in config.json")
    return [str(id2label[key]) for key in sorted(id2label, key=int)]


def tokenizer_file(folder: Path) -> Path:
    """The folder's fast tokenizer file, converted from its slow files when absent."""
    if (folder / TOKENIZER_FILE).is_file():
        return folder / TOKENIZER_FILE
    try:
        fast = transformers.AutoTokenizer.from_pretrained(str(folder), use_fast=True)
    except Exception as error:  # transformers raises many types for unusable folders
        raise ExportError(f"{folder}: no usable tokenizer: {error}") from error
    target = Path(tempfile.mkdtemp(prefix="maas-tokenizer-")) / TOKENIZER_FILE
    fast.backend_tokenizer.save(str(target))
    return target


def tokenize(path: Path, texts: tuple[str, ...], max_length: int) -> Inputs:
    """Token ids and mask for texts, as the served tokenizer makes them: truncated, padded."""
    ids, mask = TextTokenizer(path, max_length).tokenize(list(texts))
    return {"input_ids": ids, "attention_mask": mask}


def build_text_model(folder: Path, task: TextTask, max_length: int) -> BuiltModel:
    """Load the encoder (with its head) and tokenize the real sentences for verification."""
    try:
        if task == "feature-extraction":
            module: nn.Module = MeanPooledEmbedder(
                transformers.AutoModel.from_pretrained(str(folder))
            )
        else:
            head = transformers.AutoModelForSequenceClassification.from_pretrained(str(folder))
            module = SequenceClassifier(head)
    except OSError as error:
        raise ExportError(f"{folder}: cannot load a Hugging Face model: {error}") from error
    config = read_json(folder / "config.json")
    tokenizer = tokenizer_file(folder)
    return BuiltModel(
        module=module.eval(),
        labels=labels_of(config) if task == "text-classification" else [],
        eval_inputs=tokenize(tokenizer, SENTENCES, max_length),
        source={
            "folder": str(folder),
            "architecture": str(config.get("architectures", ["unknown"])),
            "loader": f"transformers {transformers.__version__}",
            "data": f"{len(SENTENCES)} varied sentences (maas.base.sentences)",
        },
        assets={TOKENIZER_FILE: tokenizer},
    )


def hf_text_spec(
    folder: Path,
    task: TextTask,
    name: str,
    description: str = "",
    weights: str = "",
    truncation: bool = True,
) -> ModelSpec:
    """A spec for a local Hugging Face encoder; reads only its JSON files until built."""
    config = read_json(folder / "config.json")
    if not config:
        raise ExportError(f"{folder} is not a Hugging Face model folder (no config.json)")
    if not name.isidentifier():
        raise ExportError(f"model name {name!r} must be letters, digits and underscores")
    max_length = max_length_of(folder)
    if task == "feature-extraction":
        width = int(str(config.get("hidden_size", 0)))
        outputs: tuple[TensorSpec, ...] = (TensorSpec("embeddings", (width,)),)
    else:
        classes = len(labels_of(config))
        outputs = (TensorSpec("logits", (classes,)), TensorSpec("probabilities", (classes,)))
    return ModelSpec(
        name=name,
        description=description or f"{task} model from {folder}",
        weights=weights or f"from {folder}",
        task=task,
        build=lambda: build_text_model(folder, task, max_length),
        inputs=TEXT_INPUTS,
        outputs=outputs,
        tolerance=Tolerance(atol=1e-4, rtol=1e-3, min_top1_agreement=1.0, min_cosine=0.9999),
        preprocessing=TextPreprocessing(max_length=max_length, truncation=truncation),
        batching=TEXT_BATCHING,
        padding_mask="attention_mask",
    )
