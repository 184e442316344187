"""Triton model configs as Triton's own protobuf (model_config_pb2): text I/O and the facts in them.

Never written as hand-built strings: `to_text` and `from_text` go through protobuf's text format.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from maas.base.errors import RepositoryError

ModelConfig: TypeAlias = mc.ModelConfig
LABELS_FILE = "labels.txt"
PYTHON_FILE = "model.py"  # what the Python backend loads from a version folder
# What each backend loads when a config names no default_model_filename.
DEFAULT_ARTIFACTS = {
    "onnxruntime": "model.onnx",
    "openvino": "model.xml",
    "tensorrt": "model.plan",
    "torch": "model.pt2",  # a torch.export program, served by maas's adapter (no NGC backend)
}
PLATFORM_BACKENDS = {
    "ensemble": "ensemble",
    "onnxruntime_onnx": "onnxruntime",
    "tensorrt_plan": "tensorrt",
    "pytorch_libtorch": "pytorch",
    "tensorflow_savedmodel": "tensorflow",
}


def to_text(config: ModelConfig) -> str:
    """config.pbtxt text for a config."""
    return str(text_format.MessageToString(config))


def from_text(text: str) -> ModelConfig:
    """Parse config.pbtxt text; raises google.protobuf.text_format.ParseError when malformed."""
    return text_format.Parse(text, mc.ModelConfig())


def backend_of(config: ModelConfig) -> str:
    """The backend a config asks for, from `backend` or else from `platform`."""
    if config.backend:
        return str(config.backend)
    if config.platform in PLATFORM_BACKENDS:
        return PLATFORM_BACKENDS[config.platform]
    raise RepositoryError(f"model {config.name!r} names neither a backend nor a known platform")


def artifact_of(config: ModelConfig) -> str:
    """The file a model's backend loads from each version folder."""
    backend = backend_of(config)
    if config.default_model_filename:
        return str(config.default_model_filename)
    if backend not in DEFAULT_ARTIFACTS:
        raise RepositoryError(f"model {config.name!r} runs on {backend!r}, which loads no artifact")
    return DEFAULT_ARTIFACTS[backend]


def string_parameters(config: ModelConfig) -> dict[str, str]:
    """A config's parameters as plain strings."""
    return {key: value.string_value for key, value in config.parameters.items()}


def json_parameters(config: dict[str, Any]) -> dict[str, str]:
    """The same, from a config in Triton's JSON form (what a Python model's `initialize` gets)."""
    return {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
