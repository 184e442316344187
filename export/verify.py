"""Numerical verification of an exported artifact against its source model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from maas.base.errors import VerificationError
from maas.base.runtimes import load_runner

from .spec import Inputs, ModelSpec

Runner = Callable[[Inputs], dict[str, np.ndarray]]
VERIFY_BATCH = 16


@dataclass(frozen=True)
class OutputComparison:
    """How far one output of the artifact is from the source model."""

    name: str
    max_abs_error: float
    max_rel_error: float
    within_tolerance: bool


@dataclass(frozen=True)
class VerificationReport:
    """Per-output errors and the task measure, on the spec's real evaluation inputs."""

    outputs: tuple[OutputComparison, ...]
    top1_agreement: float | None  # classifiers
    min_cosine: float | None  # feature extractors
    samples: int
    failures: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """Plain data for the manifest."""
        return {
            "samples": self.samples,
            "top1_agreement": self.top1_agreement,
            "min_cosine": self.min_cosine,
            "outputs": {
                item.name: {
                    "max_abs_error": item.max_abs_error,
                    "max_rel_error": item.max_rel_error,
                    "within_tolerance": item.within_tolerance,
                }
                for item in self.outputs
            },
        }


def torch_runner(spec: ModelSpec, module: torch.nn.Module) -> Runner:
    """Run the source module and name its outputs as the spec does."""

    def run(batch: Inputs) -> dict[str, np.ndarray]:
        with torch.no_grad():
            result = module(*(torch.from_numpy(batch[tensor.name]) for tensor in spec.inputs))
        tensors = result if isinstance(result, tuple) else (result,)
        return {out.name: t.numpy() for out, t in zip(spec.outputs, tensors, strict=True)}

    return run


def onnxruntime_runner(path: str) -> Runner:
    """Run an ONNX file on ONNX Runtime's CPU provider."""
    return load_runner("onnxruntime", Path(path)).infer


def run_batched(runner: Runner, inputs: Inputs, batch: int = VERIFY_BATCH) -> dict[str, np.ndarray]:
    """Run inputs through runner in batches and join the outputs."""
    count = len(next(iter(inputs.values())))
    parts = [
        runner({name: array[start : start + batch] for name, array in inputs.items()})
        for start in range(0, count, batch)
    ]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def compare(
    spec: ModelSpec, reference: Runner, candidate: Runner, inputs: Inputs
) -> VerificationReport:
    """Run both on inputs and compare; the report lists every failure."""
    return compare_outputs(spec, run_batched(reference, inputs), run_batched(candidate, inputs))


def compare_outputs(
    spec: ModelSpec, expected: dict[str, np.ndarray], actual: dict[str, np.ndarray]
) -> VerificationReport:
    """Per-output tolerances plus the task measure (top-1 agreement or cosine)."""
    failures: list[str] = []
    comparisons = []
    for output in spec.outputs:
        if output.name not in actual:
            failures.append(f"output {output.name!r} is missing from the artifact")
            continue
        comparison = compare_output(output.name, expected[output.name], actual[output.name], spec)
        comparisons.append(comparison)
        if not comparison.within_tolerance:
            failures.append(
                f"output {output.name!r}: max abs error {comparison.max_abs_error:.3g}, "
                f"max rel error {comparison.max_rel_error:.3g} exceed "
                f"atol={spec.tolerance.atol:g} + rtol={spec.tolerance.rtol:g}·|expected|"
            )
    agreement = cosine = None
    if spec.classification_output is not None:
        agreement = top1_agreement(expected, actual, spec.classification_output)
        if agreement < spec.tolerance.min_top1_agreement:
            required = spec.tolerance.min_top1_agreement
            failures.append(f"top-1 agreement {agreement:.4f} < required {required:.4f}")
    if spec.embedding_output is not None:
        cosine = min_cosine(expected, actual, spec.embedding_output)
        if cosine < spec.tolerance.min_cosine:
            failures.append(f"min cosine {cosine:.6f} < required {spec.tolerance.min_cosine:.6f}")
    count = len(next(iter(expected.values())))
    return VerificationReport(tuple(comparisons), agreement, cosine, count, tuple(failures))


def verify(
    spec: ModelSpec, reference: Runner, candidate: Runner, inputs: Inputs
) -> VerificationReport:
    """Compare, and raise VerificationError naming every failure if there is any."""
    return verify_outputs(spec, run_batched(reference, inputs), run_batched(candidate, inputs))


def verify_outputs(
    spec: ModelSpec, expected: dict[str, np.ndarray], actual: dict[str, np.ndarray]
) -> VerificationReport:
    """compare_outputs, raising VerificationError naming every failure if there is any."""
    report = compare_outputs(spec, expected, actual)
    if report.failures:
        raise VerificationError(spec.name, list(report.failures))
    return report


def compare_output(
    name: str, expected: np.ndarray, actual: np.ndarray, spec: ModelSpec
) -> OutputComparison:
    """Max abs and rel error of one output; allclose-style tolerance check."""
    if expected.shape != actual.shape:
        return OutputComparison(name, float("inf"), float("inf"), False)
    difference = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
    scale = np.abs(expected.astype(np.float64))
    relative = difference / np.maximum(scale, np.finfo(np.float32).tiny)
    allowed = spec.tolerance.atol + spec.tolerance.rtol * scale
    return OutputComparison(
        name=name,
        max_abs_error=float(difference.max(initial=0.0)),
        max_rel_error=float(relative.max(initial=0.0)),
        within_tolerance=bool(np.all(difference <= allowed)),
    )


def comparable(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], output: str) -> bool:
    """Whether both runners produced output with the same shape."""
    return (
        output in expected and output in actual and expected[output].shape == actual[output].shape
    )


def top1_agreement(
    expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], output: str
) -> float:
    """Share of samples where both runners pick the same top class."""
    if not comparable(expected, actual, output):
        return 0.0
    return float(np.mean(expected[output].argmax(axis=-1) == actual[output].argmax(axis=-1)))


def cosine_similarities(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, d) arrays."""
    a, b = expected.astype(np.float64), actual.astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    similarities: np.ndarray = (a * b).sum(axis=1) / np.maximum(norms, 1e-12)
    return similarities


def min_cosine(
    expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], output: str
) -> float:
    """The worst row-wise cosine similarity of an embedding output."""
    if not comparable(expected, actual, output):
        return 0.0
    return float(cosine_similarities(expected[output], actual[output]).min(initial=1.0))
