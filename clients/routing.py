"""Which kind of input a served model takes: encoded images, raw text, or plain tensors."""

from __future__ import annotations

from typing import Literal

from maas.conventions import IMAGE_ENSEMBLE_SUFFIX, TEXT_ENSEMBLE_SUFFIX

from .core import ModelClient, Protocol
from .errors import ModelNotFoundError

InputKind = Literal["image", "text", "tensor"]
RAW_INPUTS: dict[str, InputKind] = {"IMAGE": "image", "TEXT": "text"}
COMPANIONS: tuple[tuple[str, InputKind], ...] = (
    (IMAGE_ENSEMBLE_SUFFIX, "image"),
    (TEXT_ENSEMBLE_SUFFIX, "text"),
)


def input_kind(
    model: str, url: str | None, protocol: Protocol, timeout_s: float = 30.0
) -> InputKind:
    """Read the server's metadata: a BYTES input named IMAGE or TEXT, or such a companion model."""
    with ModelClient(model, url=url, protocol=protocol, timeout_s=timeout_s) as client:
        info = client.info  # raises ModelNotFoundError for unknown models
    if len(info.inputs) == 1 and info.inputs[0].datatype == "BYTES":
        return RAW_INPUTS.get(info.inputs[0].name, "text")
    for suffix, kind in COMPANIONS:
        with ModelClient(
            model + suffix, url=url, protocol=protocol, timeout_s=timeout_s
        ) as companion:
            if companion.is_ready():
                return kind
    return "tensor"


def require_raw_kind(model: str, kind: InputKind) -> Literal["image", "text"]:
    """Refuse models that only take tensors, where a command needs files or text."""
    if kind == "tensor":
        raise ModelNotFoundError(
            f"model {model!r} takes tensors and the server has no {model}{IMAGE_ENSEMBLE_SUFFIX} "
            f"or {model}{TEXT_ENSEMBLE_SUFFIX} ensemble for raw images or text",
            model=model,
        )
    return kind


def output_names(
    model: str, url: str | None, protocol: Protocol, timeout_s: float = 30.0
) -> tuple[str, ...]:
    """The outputs a served model declares, e.g. to tell an embedder from a classifier."""
    with ModelClient(model, url=url, protocol=protocol, timeout_s=timeout_s) as client:
        return client.info.output_names
