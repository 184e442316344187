"""Raw UTF-8 texts → input_ids and attention_mask: the tokenizer model's core.

Self-contained (numpy and Hugging Face `tokenizers` only): export copies this file beside the
Triton model that wraps it, so the canonical repository runs in NVIDIA's container without maas
installed; export's verification inputs and the benchmarks' requests are tokenized by it too.
Each call pads only to its own longest text; the model's runtime pads across requests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

TOKENIZER_FILE = "tokenizer.json"


class InvalidTextError(ValueError):
    """An input that cannot be tokenized under the configured policy."""


class TextTokenizer:
    """A fast tokenizer with a maximum length and a truncation policy."""

    def __init__(
        self,
        path: Path,
        max_length: int,
        truncation: bool = True,
        model_name: str = "tokenizer",
        input_name: str = "TEXT",
    ) -> None:
        """path: a tokenizer.json; truncation False rejects texts over max_length tokens."""
        self.model_name = model_name
        self.input_name = input_name
        self.max_length = max_length
        self.truncation = truncation
        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.no_padding()
        if truncation:
            self.tokenizer.enable_truncation(max_length)
        else:
            self.tokenizer.no_truncation()
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    @classmethod
    def from_config(cls, config: dict[str, Any], folder: Path, model_name: str) -> TextTokenizer:
        """From a tokenizer model's config in Triton's JSON form and its version folder."""
        settings = {
            key: json.loads(value["string_value"]) for key, value in config["parameters"].items()
        }
        return cls(
            folder / TOKENIZER_FILE,
            int(settings["max_length"]),
            bool(settings["truncation"]),
            model_name,
            config["input"][0]["name"],
        )

    def decode(self, item: Any, index: int) -> str:
        """UTF-8 bytes → str, with a clear error naming the bad item."""
        if isinstance(item, str):
            return item
        try:
            return bytes(item).decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidTextError(
                f"{self.model_name}: {self.input_name}[{index}] is not valid UTF-8 "
                f"(byte 0x{error.object[error.start]:02x} at offset {error.start}); "
                "expected UTF-8 encoded text"
            ) from None

    def tokenize_tensor(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A request's BYTES tensor → token ids and mask, padded to its longest text."""
        flat = raw.reshape(-1)
        return self.tokenize([self.decode(item, i) for i, item in enumerate(flat)])

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and mask, padded to the longest text of this call."""
        encodings = self.tokenizer.encode_batch(texts)
        if not self.truncation:
            for index, encoding in enumerate(encodings):
                if len(encoding.ids) > self.max_length:
                    raise InvalidTextError(
                        f"{self.model_name}: {self.input_name}[{index}] is {len(encoding.ids)} "
                        f"tokens, over the maximum of {self.max_length}, and truncation is off"
                    )
        longest = max(len(encoding.ids) for encoding in encodings)
        ids = np.full((len(encodings), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), longest), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        return ids, mask
