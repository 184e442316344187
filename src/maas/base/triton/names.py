"""Companion model names: export writes them, serving, clients and benchmarks find models by them.

A model `m` that takes tensors may have companions in the same repository:
`m_preprocess` (encoded image bytes → tensors) with the ensemble `m_image`, or
`m_tokenizer` (raw strings → token ids) with the ensemble `m_text`.
An image classifier also gets `m_scores`: the same model seen with one input and one output
(its class probabilities, labelled), the shape NVIDIA's example `image_client.py` requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RawKind = Literal["image", "text"]


@dataclass(frozen=True)
class Companions:
    """The names of the companions that give a model one kind of raw input."""

    kind: RawKind
    raw_input: str  # the ensemble's and the preparing model's one input
    prepare_suffix: str  # the Python model that turns raw bytes into the model's inputs
    ensemble_suffix: str  # raw bytes → prepare → model, as one model

    def prepare(self, model: str) -> str:
        """Name of the model that prepares raw inputs for `model`."""
        return model + self.prepare_suffix

    def ensemble(self, model: str) -> str:
        """Name of the ensemble that serves `model` on raw inputs."""
        return model + self.ensemble_suffix

    def base_of(self, name: str) -> str | None:
        """The model an ensemble or preparing model name belongs to, or None."""
        for suffix in (self.ensemble_suffix, self.prepare_suffix):
            if name.endswith(suffix) and len(name) > len(suffix):
                return name.removesuffix(suffix)
        return None


IMAGE = Companions(
    "image", raw_input="IMAGE", prepare_suffix="_preprocess", ensemble_suffix="_image"
)
TEXT = Companions("text", raw_input="TEXT", prepare_suffix="_tokenizer", ensemble_suffix="_text")
COMPANIONS = (IMAGE, TEXT)

# Kept as names of their own: clients and tests spell the suffixes through these.
IMAGE_ENSEMBLE_SUFFIX = IMAGE.ensemble_suffix
TEXT_ENSEMBLE_SUFFIX = TEXT.ensemble_suffix

SCORES_SUFFIX = "_scores"


def scores_view(model: str) -> str:
    """Name of the one-input, one-output view of an image classifier."""
    return model + SCORES_SUFFIX
