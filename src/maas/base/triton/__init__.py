"""The Triton contract, torch-free: repository layout, configs, parameters, names and endpoints.

Export writes what this package describes; serving, clients and benchmarks read it. Importing
it loads protobuf and tritonclient's config messages, never torch or a model runtime.
"""

from .config import ModelConfig, artifact_of, backend_of, from_text, to_text
from .endpoints import DEFAULT_URLS, default_url, free_port
from .names import COMPANIONS, IMAGE, TEXT, Companions
from .parameters import AdapterParameters, ModelParameters
from .repository import ModelRepository

__all__ = [
    "COMPANIONS",
    "DEFAULT_URLS",
    "IMAGE",
    "TEXT",
    "AdapterParameters",
    "Companions",
    "ModelConfig",
    "ModelParameters",
    "ModelRepository",
    "artifact_of",
    "backend_of",
    "default_url",
    "free_port",
    "from_text",
    "to_text",
]
