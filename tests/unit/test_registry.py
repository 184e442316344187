from __future__ import annotations

import pytest

from maas.base.errors import UnknownModelError
from maas.export import get_spec, model_names
from tests.integration.expectations import SERVED_MODEL_EXPECTATIONS


def test_every_registered_model_has_served_model_expectations() -> None:
    # A model registered without integration expectations would ship untested.
    assert set(model_names()) == set(SERVED_MODEL_EXPECTATIONS)


def test_get_spec_lists_known_models_when_name_is_unknown() -> None:
    with pytest.raises(
        UnknownModelError,
        match="unknown model 'resnet51'; known models: digits_cnn, minilm, resnet50, tinygpt",
    ):
        get_spec("resnet51")


@pytest.mark.parametrize("name", model_names())
def test_spec_declares_verifiable_outputs(name: str) -> None:
    spec = get_spec(name)
    measured = spec.classification_output or spec.embedding_output
    if spec.task == "text-generation":
        measured = "logits"  # checked token by token against transformers' generate
    assert measured in {output.name for output in spec.outputs}
    assert spec.opset >= 17
    assert spec.weights, "every spec says what its weights are"
