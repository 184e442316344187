"""Pieces the typed clients share: top-k parsing, batching and picking inputs and outputs.

Plain functions of a `ModelInfo`, of a response array or of a model client, so the image and
text clients (sync and async) use one implementation each.
"""

from __future__ import annotations

from dataclasses import dataclass

from maas.base.errors import InferenceFailedError, InvalidInputError

from .aio import AsyncModelClient
from .info import Array, ModelInfo
from .sync import ModelClient

PROBABILITIES_OUTPUT = "probabilities"


@dataclass(frozen=True)
class Classification:
    """One class of a top-k answer; `label` is empty when the model has no labels file."""

    label: str
    score: float
    index: int


def parse_classification(raw: bytes | str) -> Classification:
    """Parse one entry of Triton's classification output, ``"score:index[:label]"``.

    The label is everything after the second colon, so labels may contain colons themselves.
    """
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    parts = text.split(":", 2)
    try:
        score, index = float(parts[0]), int(parts[1])
    except (IndexError, ValueError) as exc:
        raise InferenceFailedError(
            f"malformed classification entry {text!r}; expected 'score:index[:label]'"
        ) from exc
    label = parts[2] if len(parts) == 3 else ""
    return Classification(label=label, score=score, index=index)


def single_input(info: ModelInfo) -> str:
    """Name of the model's only input; the image and text clients send exactly one."""
    if len(info.inputs) != 1:
        raise InvalidInputError(
            f"model {info.name!r} has {len(info.inputs)} inputs "
            f"({', '.join(info.input_names)}); this client sends exactly one",
            model=info.name,
        )
    return info.inputs[0].name


def named_or_first_output(info: ModelInfo, name: str) -> str:
    """Return output `name` if the model has it, else the model's first output."""
    if name in info.output_names:
        return name
    if not info.outputs:
        raise InferenceFailedError(f"model {info.name!r} has no outputs", model=info.name)
    return info.outputs[0].name


def classified_output(info: ModelInfo) -> str:
    """Return the output to classify: ``probabilities`` if present, else the first output."""
    return named_or_first_output(info, PROBABILITIES_OUTPUT)


def batch_slices(count: int, max_batch_size: int) -> list[slice]:
    """Split `count` items into slices the model accepts; 0 means the model does not batch."""
    step = max_batch_size if max_batch_size > 0 else count
    return [slice(start, start + step) for start in range(0, count, max(step, 1))]


def split_rows(raw: Array, count: int, model: str, what: str, items: str) -> Array:
    """Reshape a batched output to one row per item, or say why it cannot be split."""
    if count == 0 or raw.size % count:
        raise InferenceFailedError(
            f"model {model!r}: {what} output of shape {list(raw.shape)} "
            f"does not split into {count} {items}",
            model=model,
        )
    return raw.reshape(count, -1)


def parse_top_k(
    raw: Array, count: int, model: str, items: str = "inputs"
) -> list[list[Classification]]:
    """Turn a classification output into one top-k list per item; `items` names them in errors."""
    rows = split_rows(raw, count, model, "classification", items)
    return [[parse_classification(entry) for entry in row] for row in rows]


def classify_batch(
    client: ModelClient, batch: Array, top_k: int, items: str
) -> list[list[Classification]]:
    """Classify each row of `batch` with the model's single input, in calls it accepts."""
    info = client.info()
    name, output = single_input(info), classified_output(info)
    results: list[list[Classification]] = []
    for part in batch_slices(len(batch), info.max_batch_size):
        chunk = batch[part]
        raw = client.infer({name: chunk}, outputs=[output], class_count=top_k)[output]
        results.extend(parse_top_k(raw, len(chunk), client.model, items))
    return results


async def classify_batch_async(
    client: AsyncModelClient, batch: Array, top_k: int, items: str
) -> list[list[Classification]]:
    """Asyncio version of `classify_batch`."""
    info = await client.info()
    name, output = single_input(info), classified_output(info)
    results: list[list[Classification]] = []
    for part in batch_slices(len(batch), info.max_batch_size):
        chunk = batch[part]
        outputs = await client.infer({name: chunk}, outputs=[output], class_count=top_k)
        results.extend(parse_top_k(outputs[output], len(chunk), client.model, items))
    return results
