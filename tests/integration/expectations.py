"""What the integration tests expect of each registered model when served."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServedExpectation:
    """Tolerances of served outputs against the torch reference, and which samples to send."""

    atol: float
    rtol: float
    samples: str  # "digits" (held-out PNGs), "photos" (JPEGs), "sentences" or "prompts" (texts)
    min_ensemble_accuracy: float | None = None


SERVED_MODEL_EXPECTATIONS = {
    "digits_cnn": ServedExpectation(
        atol=1e-4, rtol=1e-3, samples="digits", min_ensemble_accuracy=0.95
    ),
    "resnet50": ServedExpectation(atol=1e-3, rtol=1e-3, samples="photos"),
    "minilm": ServedExpectation(atol=1e-4, rtol=1e-3, samples="sentences"),
    # Streamed token by token, compared with transformers' generate (test_generation_serving)
    "tinygpt": ServedExpectation(atol=0.0, rtol=0.0, samples="prompts"),
}
