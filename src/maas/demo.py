"""The demo behind `maas demo`: export → serve → classify → benchmark, on real images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from maas.clients import Classification
from maas.export import ModelRepository, export_model, get_spec, model_names
from maas.server.embedded import EmbeddedServer, ServerOptions

Echo = Callable[[str], object]
DEMO_DIGITS = 5


def missing_artifacts(repository: ModelRepository) -> list[str]:
    """Registered models whose ONNX artifact is not in the repository yet."""
    return [
        name
        for name in model_names()
        if not (repository.version_dir(name, 1) / "model.onnx").is_file()
    ]


def ranked(labels: list[Classification]) -> str:
    """Labels with scores, best first."""
    return ", ".join(f"{item.label} ({item.score:.4f})" for item in labels)


def run_demo(
    root: Path,
    ports: tuple[int, int, int],
    bench_seconds: float,
    reexport: bool,
    scratch: Path,
    echo: Echo,
) -> None:
    """Export what is missing, serve, classify samples over both protocols, benchmark briefly."""
    from maas.benchmarks.image_load import bench_image_model
    from maas.clients import ImageClassifier
    from maas.samples import write_held_out_digits, write_photos

    repository = ModelRepository(root)
    for name in model_names() if reexport else missing_artifacts(repository):
        export_model(get_spec(name), repository)
    digits = write_held_out_digits(scratch / "digits", DEMO_DIGITS)
    photos = write_photos(scratch / "photos")
    http_port, grpc_port, metrics_port = ports
    options = ServerOptions(
        root, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port, exit_timeout_s=5
    )
    with EmbeddedServer(options) as server:
        echo(f"tritonserver ready: HTTP {server.http_url}, gRPC {server.grpc_url}")
        with ImageClassifier("digits_cnn", url=server.http_url, protocol="http") as classifier:
            results = classifier.classify([path for path, _ in digits], top_k=5)
        for (path, truth), labels in zip(digits, results, strict=True):
            echo(f"[http] {path.name}: true {truth}, top-5 {ranked(labels)}")
        with ImageClassifier("resnet50", url=server.grpc_url, protocol="grpc") as classifier:
            results = classifier.classify(photos, top_k=5)
        for path, labels in zip(photos, results, strict=True):
            echo(f"[grpc] {path.name}: top-5 {ranked(labels)}")
        echo(
            "resnet50 has seeded random weights: its labels are class indices, "
            "meaningless by design"
        )
        for model in ("digits_cnn", "resnet50"):
            result = bench_image_model(
                model, server.grpc_url, "grpc", concurrency=4, duration_s=bench_seconds
            )
            echo(f"benchmark {model} (JPEG bytes → ensemble, gRPC): {result.summary()}")
