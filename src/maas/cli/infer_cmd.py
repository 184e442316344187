"""`maas infer`: classify images, embed or classify texts, or generate text, through a server.

maas.clients loads tritonclient and gevent, so each function imports it where it is needed:
`maas --help` and the other commands start without them.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import (
    ApiKeyOption,
    ProtocolOption,
    UrlOption,
    check_protocol,
    echo_lines,
    use_api_key,
    user_errors,
)

if TYPE_CHECKING:
    from maas.clients import Classification, Protocol

ModelArgument = Annotated[
    str, typer.Argument(help="Served model, e.g. digits_cnn, resnet50, minilm.")
]
InputsArgument = Annotated[
    list[str] | None, typer.Argument(help="Image files (JPEG/PNG) or texts.")
]
GenerateOption = Annotated[
    str | None,
    typer.Option(help="A prompt for a generation model: its text streams to the terminal."),
]
MaxTokensOption = Annotated[int, typer.Option(min=1, help="Most tokens to generate.")]
TemperatureOption = Annotated[
    float, typer.Option(min=0.0, help="0: greedy; above 0: sampling (with --seed to repeat it).")
]
SeedOption = Annotated[int | None, typer.Option(help="Seed of the sampling.")]
TopKOption = Annotated[int, typer.Option(min=1, help="How many labels per input.")]
TimeoutOption = Annotated[float, typer.Option(help="Seconds per request.")]


def infer_command(
    model: ModelArgument,
    inputs: InputsArgument = None,
    url: UrlOption = None,
    protocol: ProtocolOption = "http",
    top_k: TopKOption = 5,
    timeout: TimeoutOption = 30.0,
    api_key: ApiKeyOption = "",
    generate: GenerateOption = None,
    max_tokens: MaxTokensOption = 64,
    temperature: TemperatureOption = 0.0,
    seed: SeedOption = None,
) -> None:
    """Classify images, embed or classify texts, or stream generated text, through the server."""
    from maas.clients import input_kind
    from maas.clients.routing import require_raw_kind

    use_api_key(api_key)
    with user_errors():
        checked = check_protocol(protocol)
        if generate is not None:
            if inputs:
                raise typer.BadParameter("give either inputs or --generate, not both")
            options = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
            stream_generation(model, generate, url, checked, timeout, options)
            return
        if not inputs:
            raise typer.BadParameter("give image files or texts, or --generate PROMPT")
        kind = require_raw_kind(model, input_kind(model, url, checked, timeout))
        if kind == "image":
            echo_lines(infer_images(model, inputs, url, checked, top_k, timeout))
        else:
            echo_lines(infer_texts(model, inputs, url, checked, top_k, timeout))


def ranked_labels(labels: list[Classification]) -> str:
    """Labels with scores, best first."""
    return ", ".join(f"{item.label} ({item.score:.4f})" for item in labels)


def infer_images(
    model: str, paths: list[str], url: str | None, protocol: Protocol, top_k: int, timeout: float
) -> list[str]:
    """One line per image file: its top-k labels."""
    from maas.clients import ImageClassifier

    for path in paths:
        if not Path(path).is_file():
            raise typer.BadParameter(f"{path} is not a file")
    with ImageClassifier(model, url=url, protocol=protocol, timeout_s=timeout) as classifier:
        results = classifier.classify(paths, top_k=top_k)
    return [f"{path}: {ranked_labels(labels)}" for path, labels in zip(paths, results, strict=True)]


def infer_texts(
    model: str, texts: list[str], url: str | None, protocol: Protocol, top_k: int, timeout: float
) -> list[str]:
    """Embeddings (with pairwise cosine similarities) or top-k labels, one line per text."""
    from maas.clients import TextClassifier
    from maas.clients.describe import text_model_kind

    if text_model_kind(model, url, protocol, timeout) == "embedder":
        return embed_texts(model, texts, url, protocol, timeout)
    with TextClassifier(model, url=url, protocol=protocol, timeout_s=timeout) as classifier:
        results = classifier.classify(texts, top_k=top_k)
    return [
        f"{text!r}: {ranked_labels(labels)}" for text, labels in zip(texts, results, strict=True)
    ]


def embed_texts(
    model: str, texts: list[str], url: str | None, protocol: Protocol, timeout: float
) -> list[str]:
    """One line per text with the start of its vector, then the cosine of every pair."""
    from maas.clients import TextEmbedder

    with TextEmbedder(model, url=url, protocol=protocol, timeout_s=timeout) as embedder:
        vectors = embedder.embed(texts)
    lines = [
        f"{text!r}: {vector.size} dims [{', '.join(f'{v:.4f}' for v in vector[:4])}, …]"
        for text, vector in zip(texts, vectors, strict=True)
    ]
    for i, j in itertools.combinations(range(len(texts)), 2):
        lines.append(f"cosine({i}, {j}) = {float(vectors[i] @ vectors[j]):.4f}")
    return lines


def stream_generation(
    model: str,
    prompt: str,
    url: str | None,
    protocol: Protocol,
    timeout: float,
    options: dict[str, float | int | None],
) -> None:
    """Print the prompt, then the generated text as it arrives."""
    from maas.clients.generate import TextGenerator

    typer.echo(prompt, nl=False)
    with TextGenerator(model, url=url, protocol=protocol, timeout_s=timeout) as generator:
        for text in generator.stream(prompt, **options):
            typer.echo(text, nl=False)
    typer.echo()
