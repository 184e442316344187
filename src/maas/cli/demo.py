"""The demo behind `maas demo`: export → serve → classify and embed → benchmark, on real data."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from maas.clients import Classification, ImageClassifier, TextEmbedder
from maas.export import ModelRepository, export_model, get_spec, model_names
from maas.serve import ServingStack, StackOptions, serve
from maas.serve.embedded import ServerOptions

Echo = Callable[[str], object]
DEMO_DIGITS = 5
DEMO_TEXTS = (
    "A man is playing a guitar.",
    "Someone is playing an instrument.",
    "The stock market fell sharply today.",
)
BENCH_CONCURRENCY = 4


def missing_artifacts(repository: ModelRepository) -> list[str]:
    """Registered models with no exported artifact in the repository yet."""
    return [name for name in model_names() if not repository.has_artifacts(name, 1)]


def ranked(labels: list[Classification]) -> str:
    """Labels with scores, best first."""
    return ", ".join(f"{item.label} ({item.score:.4f})" for item in labels)


def classify_samples(server: ServingStack, scratch: Path, echo: Echo) -> None:
    """Held-out digits as PNG over HTTP, photographs as JPEG over gRPC."""
    from maas.export.samples import write_held_out_digits, write_photos

    digits = write_held_out_digits(scratch / "digits", DEMO_DIGITS)
    with ImageClassifier("digits_cnn", url=server.http_url, protocol="http") as classifier:
        results = classifier.classify([path for path, _ in digits], top_k=5)
    for (path, truth), labels in zip(digits, results, strict=True):
        echo(f"[http] {path.name}: true {truth}, top-5 {ranked(labels)}")
    photos = write_photos(scratch / "photos")
    with ImageClassifier("resnet50", url=server.grpc_url, protocol="grpc") as classifier:
        results = classifier.classify(photos, top_k=5)
    for path, labels in zip(photos, results, strict=True):
        echo(f"[grpc] {path.name}: top-5 {ranked(labels)}")
    echo("resnet50 has seeded random weights: its labels are class indices, meaningless by design")


def embed_samples(server: ServingStack, echo: Echo) -> None:
    """Raw strings to minilm over gRPC; similar sentences land close together."""
    with TextEmbedder("minilm", url=server.grpc_url, protocol="grpc") as embedder:
        vectors = embedder.embed(list(DEMO_TEXTS))
    echo(f"[grpc] minilm embedded {len(DEMO_TEXTS)} texts into {vectors.shape[1]} dims")
    for i in range(1, len(DEMO_TEXTS)):
        similarity = float(vectors[0] @ vectors[i])
        echo(f"       cosine({DEMO_TEXTS[0]!r}, {DEMO_TEXTS[i]!r}) = {similarity:.3f}")


def generate_sample(server: ServingStack, echo: Echo) -> None:
    """A prompt to tinygpt's generation service over gRPC, its text streamed as it decodes."""
    from maas.clients.generate import TextGenerator

    prompt = "The with statement"
    with TextGenerator("tinygpt_generate", url=server.grpc_url, protocol="grpc") as generator:
        began = time.perf_counter()
        pieces = list(generator.stream(prompt, max_tokens=32))
        elapsed = time.perf_counter() - began
    text = "".join(pieces).replace("\n", " ")
    echo(f"[grpc] tinygpt_generate streamed {len(pieces)} pieces in {elapsed:.2f} s:")
    echo(f"       {prompt}{text}")


def run_demo(
    root: Path,
    ports: tuple[int, int, int],
    bench_seconds: float,
    reexport: bool,
    scratch: Path,
    echo: Echo,
) -> None:
    """Export what is missing, serve, call every model over both protocols, benchmark briefly."""
    from maas.benchmarks.bench import BenchOptions, run_bench

    repository = ModelRepository(root)
    for name in model_names() if reexport else missing_artifacts(repository):
        export_model(get_spec(name), repository)
    http_port, grpc_port, metrics_port = ports
    options = ServerOptions(
        root, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port, exit_timeout_s=5
    )
    with serve(StackOptions(options)) as server:
        echo(f"tritonserver ready: HTTP {server.http_url}, gRPC {server.grpc_url}")
        echo(f"HTTP is guarded by: {server.http_protection}")
        classify_samples(server, scratch, echo)
        embed_samples(server, echo)
        generate_sample(server, echo)
        for model, what in (
            ("digits_cnn_image", "JPEG bytes"),
            ("resnet50_image", "JPEG bytes"),
            ("minilm_text", "one real sentence"),
        ):
            bench = BenchOptions(
                model,
                protocol="grpc",
                url=server.grpc_url,
                stats_url=server.http_url,
                users=(BENCH_CONCURRENCY,),
                duration_s=bench_seconds,
                warmup_s=1.0,
                repository=root,
                limit_seconds=0.0,
                progress=False,  # the demo prints the result itself, once
            )
            (result,) = run_bench(bench).levels
            echo(f"benchmark {model} ({what} per request, Locust over gRPC): {result.summary()}")
