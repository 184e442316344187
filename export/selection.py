"""Build every target from the verified ONNX file, gate it, time it, and pick the one to serve."""

from __future__ import annotations

import logging
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from maas.base.errors import RuntimeUnavailableError
from maas.base.runtimes import Runner, RuntimeOptions, load_runner

from .spec import BuiltModel, Inputs, ModelSpec
from .targets import BuildContext, Target
from .verify import compare_outputs, min_cosine, run_batched, top1_agreement

log = logging.getLogger("maas.export")
MEASURE_SECONDS = 0.5  # per batch size; medians of per-call times make short loops usable
MIN_CALLS = 3


@dataclass(frozen=True)
class Throughput:
    """Median in-process speed at one batch size."""

    batch: int
    samples_per_s: float
    median_ms: float


@dataclass
class Candidate:
    """One target as built and judged on this machine."""

    target: Target
    folder: Path
    status: str = "accepted"  # accepted | rejected | skipped
    reasons: list[str] = field(default_factory=list)
    measures: dict[str, float] = field(default_factory=dict)
    throughput: list[Throughput] = field(default_factory=list)
    runtime: dict[str, str] = field(default_factory=dict)

    @property
    def best(self) -> float:
        """Best samples/s over the measured batch sizes (0 when not measured)."""
        return max((item.samples_per_s for item in self.throughput), default=0.0)

    def as_dict(self) -> dict[str, object]:
        """Plain data for the manifest."""
        return {
            "status": self.status,
            "reasons": self.reasons,
            "measures": self.measures,
            "runtime": self.runtime,
            "throughput": [vars(item) for item in self.throughput],
        }


def batch_sizes(spec: ModelSpec) -> list[int]:
    """Batch 1 and the preferred sizes the dynamic batcher aims for."""
    sizes = {1, *spec.batching.preferred_batch_sizes}
    return sorted(size for size in sizes if size <= max(spec.batching.max_batch_size, 1))


def cycled_batch(inputs: Inputs, size: int) -> Inputs:
    """A batch of size rows, cycling through the real inputs."""
    count = len(next(iter(inputs.values())))
    rows = np.arange(size) % count
    return {name: np.ascontiguousarray(array[rows]) for name, array in inputs.items()}


def median_seconds(call: Callable[[], object], seconds: float) -> float:
    """Median time of call, repeated for seconds (at least MIN_CALLS times) after a warm-up."""
    call()  # warm-up: first calls allocate and pick kernels
    timings: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(timings) < MIN_CALLS or time.perf_counter() < deadline:
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def measure(runner: Runner, inputs: Inputs, sizes: list[int], seconds: float) -> list[Throughput]:
    """Median per-call time at each batch size, cycling through the real inputs."""
    results = []
    for size in sizes:
        median = median_seconds(partial(runner.infer, cycled_batch(inputs, size)), seconds)
        results.append(Throughput(size, size / median, median * 1000.0))
    return results


def gate(
    spec: ModelSpec, target: Target, built: BuiltModel, expected: Inputs, actual: Inputs
) -> tuple[list[str], dict[str, float]]:
    """fp32 targets meet the spec's tolerances; reduced precision meets the accuracy gates."""
    if not target.reduced_precision:
        report = compare_outputs(spec, expected, actual)
        measures = {f"{o.name}_max_abs_error": o.max_abs_error for o in report.outputs}
        return list(report.failures), measures
    tolerance = spec.tolerance
    failures, measures = [], {}
    if spec.classification_output is not None:
        agreement = top1_agreement(expected, actual, spec.classification_output)
        measures["top1_agreement"] = agreement
        if agreement < tolerance.reduced_min_top1_agreement:
            required = tolerance.reduced_min_top1_agreement
            failures.append(f"top-1 agreement with fp32 {agreement:.4f} < {required}")
        if built.eval_targets is not None:
            drop = accuracy(expected, spec, built) - accuracy(actual, spec, built)
            measures["accuracy_drop"] = drop
            if drop > tolerance.reduced_max_accuracy_drop:
                failures.append(
                    f"held-out accuracy drops {drop * 100:.2f} points "
                    f"> {tolerance.reduced_max_accuracy_drop * 100:.2f}"
                )
    if spec.embedding_output is not None:
        cosine = min_cosine(expected, actual, spec.embedding_output)
        measures["min_cosine"] = cosine
        if cosine < tolerance.reduced_min_cosine:
            failures.append(f"min cosine to fp32 {cosine:.6f} < {tolerance.reduced_min_cosine}")
    return failures, measures


def accuracy(outputs: Inputs, spec: ModelSpec, built: BuiltModel) -> float:
    """Held-out accuracy of one set of outputs."""
    assert built.eval_targets is not None and spec.classification_output is not None
    predicted = outputs[spec.classification_output].argmax(axis=-1)
    return float(np.mean(predicted == built.eval_targets))


def evaluate(
    spec: ModelSpec,
    target: Target,
    built: BuiltModel,
    onnx: Path,
    expected: Inputs,
    scratch: Path,
    seconds: float = MEASURE_SECONDS,
) -> Candidate:
    """Build, gate and time one target; never raises for a target that cannot run here."""
    folder = scratch / target.name
    candidate = Candidate(target, folder)
    reason = target.unavailable()
    if reason is not None:
        candidate.status, candidate.reasons = "skipped", [reason]
        return candidate
    folder.mkdir(parents=True)
    try:
        target.build(BuildContext(spec, onnx, folder, built.eval_inputs, built.module))
        runner = load_runner(
            target.runtime, folder / target.artifact, RuntimeOptions(target.precision)
        )
    except RuntimeUnavailableError as error:
        candidate.status, candidate.reasons = "skipped", [str(error)]
        return candidate
    candidate.runtime = runner.describe()
    actual = run_batched(runner.infer, built.eval_inputs)
    candidate.reasons, candidate.measures = gate(spec, target, built, expected, actual)
    if candidate.reasons:
        candidate.status = "rejected"
        log.warning("%s: %s rejected: %s", spec.name, target.name, "; ".join(candidate.reasons))
        shutil.rmtree(folder)  # a failed artifact must not reach the repository
        return candidate
    candidate.throughput = measure(runner, built.eval_inputs, batch_sizes(spec), seconds)
    speeds = ", ".join(f"b{t.batch} {t.samples_per_s:.1f}/s" for t in candidate.throughput)
    log.info("%s: %s accepted (%s)", spec.name, target.name, speeds)
    return candidate


PRECISION_RANK = {"fp32": 0, "bf16": 1, "fp16": 1, "int8": 2}  # lower is closer to the source
TIE = 0.05  # timings on a shared machine wobble by a few per cent
# A repository's recorded target is replaced only by one at least this much faster, in medians
# of CONFIRM_ROUNDS timings of both taken alternately: re-exports do not flip between targets
# whose speeds differ by less than a shared machine's run-to-run noise.
KEEP_MARGIN = 1.25
CONFIRM_ROUNDS = 3


def fastest(candidates: list[Candidate]) -> Candidate | None:
    """The fastest accepted candidate; within 5 % of it, the most precise one wins."""
    accepted = [c for c in candidates if c.status == "accepted"]
    if not accepted:
        return None
    top = max(c.best for c in accepted)
    close = [c for c in accepted if c.best >= (1 - TIE) * top]
    return min(close, key=lambda c: (PRECISION_RANK.get(c.target.precision, 3), -c.best))


def find(candidates: list[Candidate], name: str | None) -> Candidate | None:
    """The candidate of the target called name, if it was tried."""
    return next((c for c in candidates if c.target.name == name), None)


def choose(candidates: list[Candidate], recorded: str | None = None) -> Candidate | None:
    """The target to serve.

    Without a recorded target: `fastest`. With one (the repository already serves this model)
    that passed its gates again: it is kept unless `fastest` is at least KEEP_MARGIN times its
    speed. A recorded target that failed its gate or cannot run here is replaced by `fastest`.
    """
    best = fastest(candidates)
    kept = find(candidates, recorded)
    if best is None or kept is None or kept.status != "accepted":
        return best
    return best if best.best >= KEEP_MARGIN * kept.best else kept


def select(
    model: str,
    candidates: list[Candidate],
    recorded: str | None,
    retime: Callable[[list[Candidate]], None],
) -> Candidate | None:
    """`choose`, confirming a switch away from the recorded target by timing both again.

    retime re-measures the candidates it is given, in place. Logs why the recorded target
    stays or goes.
    """
    chosen = choose(candidates, recorded)
    kept = find(candidates, recorded)
    if kept is None or chosen is None:
        return chosen
    name = kept.target.name
    if kept.status != "accepted":
        why = "; ".join(kept.reasons) or kept.status
        log.warning(
            "%s: the recorded %s is %s here (%s): choosing afresh", model, name, kept.status, why
        )
        return chosen
    challenger = fastest(candidates) if chosen is kept else chosen
    if challenger is None or challenger is kept:
        log.info("%s: keeping the recorded %s: it is still the fastest", model, name)
        return kept
    if chosen is not kept:
        log.info(
            "%s: %s is %.2f× the recorded %s's speed: timing both %d more times",
            model,
            chosen.target.name,
            chosen.best / kept.best,
            name,
            CONFIRM_ROUNDS,
        )
        retime([kept, chosen])
        chosen = choose([kept, chosen], recorded)
    verdict = "replacing" if chosen is challenger else "keeping"
    log.info(
        "%s: %s the recorded %s: %s is %.2f× its speed (margin %.2f×)",
        model,
        verdict,
        name,
        challenger.target.name,
        challenger.best / kept.best,
        KEEP_MARGIN,
    )
    return chosen


def retime(
    candidates: list[Candidate],
    inputs: Inputs,
    sizes: list[int],
    seconds: float = MEASURE_SECONDS,
    rounds: int = CONFIRM_ROUNDS,
    load: Callable[[Candidate], Runner] | None = None,
) -> None:
    """Time the candidates again, alternately, rounds times; keep each batch size's medians."""
    load = load or load_candidate
    runners = [load(candidate) for candidate in candidates]
    timings: list[list[list[Throughput]]] = [[] for _ in candidates]
    for _ in range(rounds):
        for runner, measured in zip(runners, timings, strict=True):
            measured.append(measure(runner, inputs, sizes, seconds))
    for candidate, measured in zip(candidates, timings, strict=True):
        candidate.throughput = [
            Throughput(
                runs[0].batch,
                statistics.median(run.samples_per_s for run in runs),
                statistics.median(run.median_ms for run in runs),
            )
            for runs in zip(*measured, strict=True)
        ]


def load_candidate(candidate: Candidate) -> Runner:
    """A candidate's artifact, loaded again from its scratch folder."""
    target = candidate.target
    return load_runner(
        target.runtime, candidate.folder / target.artifact, RuntimeOptions(target.precision)
    )
