"""Triton Python-backend model: raw UTF-8 strings → input_ids and attention_mask.

Uses the Hugging Face fast tokenizer saved beside this file (tokenizer.json). Each request
is padded only to its own longest text; the model's runtime pads across requests.
Settings from the config's parameters (JSON values): max_length and truncation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer

TOKENIZER_FILE = "tokenizer.json"


class InvalidTextError(ValueError):
    """An input that cannot be tokenized under the configured policy."""


class TritonPythonModel:
    """Tokenize each request's texts; pad within the request."""

    def initialize(self, args: dict[str, str]) -> None:
        """Load the tokenizer and its truncation policy."""
        config = json.loads(args["model_config"])
        settings = {
            key: json.loads(value["string_value"]) for key, value in config["parameters"].items()
        }
        self.model_name = args["model_name"]
        self.input_name = config["input"][0]["name"]
        self.max_length = int(settings["max_length"])
        self.truncation = bool(settings["truncation"])
        folder = Path(args["model_repository"]) / args["model_version"]
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self.tokenizer.no_padding()
        if self.truncation:
            self.tokenizer.enable_truncation(self.max_length)
        else:
            self.tokenizer.no_truncation()
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request; a bad text fails its own request with INVALID_ARG."""
        responses = []
        for request in requests:
            raw = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy().reshape(-1)
            try:
                ids, mask = self.tokenize([self.decode(item, i) for i, item in enumerate(raw)])
            except InvalidTextError as error:
                failure = pb_utils.TritonError(str(error), pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=failure))
                continue
            outputs = [pb_utils.Tensor("input_ids", ids), pb_utils.Tensor("attention_mask", mask)]
            responses.append(pb_utils.InferenceResponse(outputs))
        return responses

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

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and mask, padded to the longest text of this request."""
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
