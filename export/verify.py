"""Numerical verification of an exported artifact against its source model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from maas.errors import VerificationError

from .spec import ModelSpec

Runner = Callable[[np.ndarray], dict[str, np.ndarray]]
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
    top1_agreement: float
    samples: int
    failures: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """Plain data for the manifest."""
        return {
            "samples": self.samples,
            "top1_agreement": self.top1_agreement,
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

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            result = module(torch.from_numpy(batch))
        tensors = result if isinstance(result, tuple) else (result,)
        return {out.name: t.numpy() for out, t in zip(spec.outputs, tensors, strict=True)}

    return run


def onnxruntime_runner(path: str) -> Runner:
    """Run an ONNX file on ONNX Runtime's CPU provider."""
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    names = [output.name for output in session.get_outputs()]

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, {input_name: batch}), strict=True))

    return run


def run_batched(
    runner: Runner, inputs: np.ndarray, batch: int = VERIFY_BATCH
) -> dict[str, np.ndarray]:
    """Run inputs through runner in batches and join the outputs."""
    parts = [runner(inputs[start : start + batch]) for start in range(0, len(inputs), batch)]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def compare(
    spec: ModelSpec, reference: Runner, candidate: Runner, inputs: np.ndarray
) -> VerificationReport:
    """Compare candidate to reference on inputs; the report lists every failure."""
    expected = run_batched(reference, inputs)
    actual = run_batched(candidate, inputs)
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
    agreement = top1_agreement(expected, actual, spec.classification_output)
    if agreement < spec.tolerance.min_top1_agreement:
        failures.append(
            f"top-1 agreement {agreement:.4f} < required {spec.tolerance.min_top1_agreement:.4f}"
        )
    return VerificationReport(tuple(comparisons), agreement, len(inputs), tuple(failures))


def verify(
    spec: ModelSpec, reference: Runner, candidate: Runner, inputs: np.ndarray
) -> VerificationReport:
    """Compare, and raise VerificationError naming every failure if there is any."""
    report = compare(spec, reference, candidate, inputs)
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


def top1_agreement(
    expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], output: str
) -> float:
    """Share of samples where both runners pick the same top class."""
    if output not in expected or output not in actual:
        return 0.0
    if expected[output].shape != actual[output].shape:
        return 0.0
    return float(np.mean(expected[output].argmax(axis=-1) == actual[output].argmax(axis=-1)))
