"""resnet50: the ResNet-50 architecture from transformers with seeded random weights.

Random weights make this model right for speed work and useless for accuracy claims:
its labels are class indices, not ImageNet names.
"""

from __future__ import annotations

import numpy as np
import torch
import transformers
from PIL import Image
from sklearn.datasets import load_sample_images
from transformers import ResNetConfig, ResNetForImageClassification

from ..registry import register
from ..spec import Batching, BuiltModel, ImagePreprocessing, ModelSpec, TensorSpec, Tolerance

SEED = 0
NUM_CLASSES = 1000
IMAGE_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_CROPS_PER_IMAGE = 4


class LogitsAndProbabilities(torch.nn.Module):
    """Expose a transformers image classifier as plain tensors: logits and softmax."""

    def __init__(self, classifier: torch.nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return logits and class probabilities."""
        logits = self.classifier(pixel_values=pixel_values).logits
        return logits, torch.softmax(logits, dim=-1)


def sample_photo_crops() -> np.ndarray:
    """Real photographs (scikit-learn's bundled samples) cut into normalised 224×224 crops."""
    crops = []
    mean = np.array(IMAGENET_MEAN, dtype=np.float32)[:, None, None]
    std = np.array(IMAGENET_STD, dtype=np.float32)[:, None, None]
    for photo in load_sample_images().images:
        height, width = photo.shape[:2]
        side = min(height, width) * 3 // 4
        for k in range(EVAL_CROPS_PER_IMAGE):
            top = (height - side) * k // (EVAL_CROPS_PER_IMAGE - 1)
            left = (width - side) * k // (EVAL_CROPS_PER_IMAGE - 1)
            window = photo[top : top + side, left : left + side]
            resized = Image.fromarray(window).resize(
                (IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR
            )
            chw = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 255.0
            crops.append((chw - mean) / std)
    batch: np.ndarray = np.stack(crops).astype(np.float32)
    return batch


def build() -> BuiltModel:
    """Build ResNet-50 with weights drawn from a fixed seed."""
    torch.manual_seed(SEED)
    config = ResNetConfig(num_labels=NUM_CLASSES)  # type: ignore[call-arg]
    classifier = ResNetForImageClassification(config)
    return BuiltModel(
        module=LogitsAndProbabilities(classifier).eval(),
        labels=[f"class_{index:03d}" for index in range(NUM_CLASSES)],
        eval_inputs={"pixel_values": sample_photo_crops()},
        source={
            "architecture": "transformers.ResNetForImageClassification "
            f"({transformers.__version__})",
            "weights": f"random, torch.manual_seed({SEED})",
            "data": "crops of sklearn.datasets.load_sample_images photographs",
        },
    )


SPEC = register(
    ModelSpec(
        name="resnet50",
        description="ResNet-50 image classifier (224×224 RGB, 1000 classes)",
        weights="seeded random weights: for speed work only, predictions are meaningless",
        task="image-classification",
        build=build,
        inputs=(TensorSpec("pixel_values", (3, IMAGE_SIZE, IMAGE_SIZE), format="NCHW"),),
        outputs=(TensorSpec("logits", (NUM_CLASSES,)), TensorSpec("probabilities", (NUM_CLASSES,))),
        tolerance=Tolerance(atol=1e-3, rtol=1e-3, min_top1_agreement=1.0),
        preprocessing=ImagePreprocessing(
            height=IMAGE_SIZE,
            width=IMAGE_SIZE,
            channels=3,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            resize="bilinear",
            center_crop=True,
        ),
        batching=Batching(max_batch_size=16, preferred_batch_sizes=(4, 8)),
    )
)
