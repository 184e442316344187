"""Clients for models served by Triton: generic tensors, image classification, text models."""

from maas.base.errors import (
    ClientError,
    InferenceFailedError,
    InferenceTimeoutError,
    InvalidInputError,
    ModelNotFoundError,
    ServerOverloadedError,
    ServerUnavailableError,
)

from .aio import AsyncModelClient
from .errors import map_error
from .image import AsyncImageClassifier, Classification, ImageClassifier, parse_classification
from .info import ModelInfo, TensorInfo
from .retry import NO_RETRIES, RetryPolicy
from .routing import InputKind, input_kind
from .sync import ModelClient
from .text import AsyncTextClassifier, AsyncTextEmbedder, TextClassifier, TextEmbedder
from .transport import ClientOptions, Protocol, default_url

__all__ = [
    "NO_RETRIES",
    "AsyncImageClassifier",
    "AsyncModelClient",
    "AsyncTextClassifier",
    "AsyncTextEmbedder",
    "Classification",
    "ClientError",
    "ClientOptions",
    "ImageClassifier",
    "InferenceFailedError",
    "InferenceTimeoutError",
    "InputKind",
    "InvalidInputError",
    "ModelClient",
    "ModelInfo",
    "ModelNotFoundError",
    "Protocol",
    "RetryPolicy",
    "ServerOverloadedError",
    "ServerUnavailableError",
    "TensorInfo",
    "TextClassifier",
    "TextEmbedder",
    "default_url",
    "input_kind",
    "map_error",
    "parse_classification",
]
