"""The registry of exportable models: name → ModelSpec."""

from __future__ import annotations

from maas.base.errors import UnknownModelError

from .spec import ModelSpec

_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a spec; names are unique."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    """The spec registered under name, or UnknownModelError listing the known names."""
    _load_builtin_models()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(name, list(_REGISTRY)) from None


def model_names() -> list[str]:
    """Every registered model name, sorted."""
    _load_builtin_models()
    return sorted(_REGISTRY)


def _load_builtin_models() -> None:
    # Importing the modules registers their specs; done lazily so importing the registry is cheap.
    from .models import digits, minilm, resnet, tinygpt  # noqa: F401
