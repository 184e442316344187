"""Clients for models served by Triton: generic tensors in and out, and image classification."""

from .core import (
    AsyncModelClient,
    ModelClient,
    ModelInfo,
    Protocol,
    TensorInfo,
    default_url,
)
from .errors import (
    ClientError,
    InferenceFailedError,
    InferenceTimeoutError,
    InvalidInputError,
    ModelNotFoundError,
    ServerUnavailableError,
    map_error,
)
from .image import AsyncImageClassifier, Classification, ImageClassifier, parse_classification

__all__ = [
    "AsyncImageClassifier",
    "AsyncModelClient",
    "Classification",
    "ClientError",
    "ImageClassifier",
    "InferenceFailedError",
    "InferenceTimeoutError",
    "InvalidInputError",
    "ModelClient",
    "ModelInfo",
    "ModelNotFoundError",
    "Protocol",
    "ServerUnavailableError",
    "TensorInfo",
    "default_url",
    "map_error",
    "parse_classification",
]
