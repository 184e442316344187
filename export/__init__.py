"""Export: model specs, the generic exporter and the Triton repository writer."""

from maas.base.triton.repository import ModelRepository

from .exporter import ExportResult, export_model
from .registry import get_spec, model_names, register
from .spec import ModelSpec

__all__ = [
    "ExportResult",
    "ModelRepository",
    "ModelSpec",
    "export_model",
    "get_spec",
    "model_names",
    "register",
]
