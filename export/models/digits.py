"""digits_cnn: a small CNN trained here, deterministically, on scikit-learn's bundled digits."""

from __future__ import annotations

import numpy as np
import sklearn
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from ..registry import register
from ..spec import Batching, BuiltModel, ImagePreprocessing, ModelSpec, TensorSpec, Tolerance

SEED = 0
EPOCHS = 40
BATCH_SIZE = 32
LEARNING_RATE = 2e-3
PIXEL_MAX = 16.0  # the digits data set stores 8×8 images with values 0..16


class DigitsCNN(nn.Module):
    """Two 3×3 convolutions and a small classifier head for 1×8×8 images."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU())
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return logits and class probabilities."""
        logits = self.classifier(self.head(self.features(pixels)))
        return logits, torch.softmax(logits, dim=-1)


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed train/held-out split: images scaled to [0, 1] as (N, 1, 8, 8) float32."""
    digits = load_digits()
    images = (digits.images / PIXEL_MAX).astype(np.float32)[:, None, :, :]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.2, random_state=SEED, stratify=digits.target
    )
    return x_train, x_test, y_train.astype(np.int64), y_test.astype(np.int64)


def train(x_train: np.ndarray, y_train: np.ndarray) -> DigitsCNN:
    """Train deterministically: fixed seeds, one thread, deterministic kernels."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # float sums must not depend on the machine's core count
    try:
        torch.manual_seed(SEED)
        model = DigitsCNN()
        optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        generator = torch.Generator().manual_seed(SEED)
        x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
        model.train()
        for _ in range(EPOCHS):
            for batch in torch.randperm(len(x), generator=generator).split(BATCH_SIZE):
                optimiser.zero_grad()
                loss = nn.functional.cross_entropy(model(x[batch])[0], y[batch])
                loss.backward()
                optimiser.step()
        return model.eval()
    finally:
        torch.set_num_threads(threads)


def accuracy(model: nn.Module, images: np.ndarray, targets: np.ndarray) -> float:
    """Top-1 accuracy of model on images."""
    with torch.no_grad():
        predicted = model(torch.from_numpy(images))[0].argmax(dim=-1).numpy()
    return float((predicted == targets).mean())


def build() -> BuiltModel:
    """Train the CNN and hand back the held-out split as verification data."""
    x_train, x_test, y_train, y_test = load_split()
    model = train(x_train, y_train)
    return BuiltModel(
        module=model,
        labels=[str(digit) for digit in range(10)],
        eval_inputs={"pixels": x_test},
        eval_targets=y_test,
        metrics={"held_out_accuracy": accuracy(model, x_test, y_test)},
        source={
            "data": f"sklearn.datasets.load_digits (scikit-learn {sklearn.__version__})",
            "recipe": f"Adam lr={LEARNING_RATE}, {EPOCHS} epochs, batch {BATCH_SIZE}, seed {SEED}",
            "split": f"stratified 80/20, random_state={SEED}",
        },
    )


SPEC = register(
    ModelSpec(
        name="digits_cnn",
        description="Handwritten digit classifier (8×8 grayscale, classes 0-9)",
        weights="trained here at export time on scikit-learn's bundled digits data (real data)",
        task="image-classification",
        build=build,
        inputs=(TensorSpec("pixels", (1, 8, 8), format="NCHW"),),
        outputs=(TensorSpec("logits", (10,)), TensorSpec("probabilities", (10,))),
        tolerance=Tolerance(atol=1e-4, rtol=1e-3, min_top1_agreement=1.0),
        preprocessing=ImagePreprocessing(
            height=8, width=8, channels=1, mean=(0.0,), std=(1.0,), resize="box"
        ),
        batching=Batching(max_batch_size=64, preferred_batch_sizes=(16, 32)),
        min_accuracy=0.95,
    )
)
