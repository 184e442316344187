"""What the integration tests expect of each registered model when served."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServedExpectation:
    """Tolerances of served outputs against the torch reference, and which images to send."""

    atol: float
    rtol: float
    sample_images: str  # "digits" (held-out PNGs with true labels) or "photos" (JPEG photographs)
    min_ensemble_accuracy: float | None = None


SERVED_MODEL_EXPECTATIONS = {
    "digits_cnn": ServedExpectation(
        atol=1e-4, rtol=1e-3, sample_images="digits", min_ensemble_accuracy=0.95
    ),
    "resnet50": ServedExpectation(atol=1e-3, rtol=1e-3, sample_images="photos"),
}
