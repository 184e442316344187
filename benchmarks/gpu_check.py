"""The GPU path in one run on a lent device: `bash benchmarks/gpu_check.sh` (issue 20).

Each step is recorded in the report as passed, failed or not run (with why), and a failed
step does not stop the ones that do not need it:

1. The environment: torch, CUDA, the GPU.
2. Export through the real exporter with the GPU target (`torch-cuda-bf16`): the fp32 ONNX
   file verified against torch, then the bf16 program built, gated against the fp32
   reference (digits: the held-out accuracy gate; MiniLM: cosine; ResNet-50: top-1) and timed.
3. MiniLM's bf16 embeddings against sentence-transformers' fp32 ones on the real sentences
   (`reference.npz`, made by `gpu_pack` with the full weights): min cosine ≥ 0.999.
4. In process: the serving adapter's own runner (`ServedModelRunner`, CUDA graphs for batch 1
   and the preferred sizes) at each batch size; batch 1 and the best.
5. Served: the exported repository on `KIND_GPU` instances in the carried tritonserver, then
   the same two batch sizes over gRPC from the device's own cores; served / in process.

`--target onnxruntime-fp32 --models digits_cnn` runs the same steps on a CPU (what the test
suite does to keep this script honest where no GPU exists).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from maas.base.errors import MaasError
from maas.base.runtimes import Arrays
from maas.base.served.adapter import ServedModelRunner
from maas.base.triton.repository import ModelRepository
from maas.benchmarks.gpu_pack import quiet_transformers
from maas.export.selection import Throughput, cycled_batch, median_seconds

GPU_TARGET = "torch-cuda-bf16"
MODELS = ("digits_cnn", "resnet50", "minilm")
MEASURED = ("resnet50", "minilm")
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)
MIN_COSINE = 0.999
SERVED_GOAL = 0.9  # served / in process at the best batch
IN_FLIGHT = 4  # requests a served measurement keeps in flight at the best batch
REFERENCE_MODEL = "minilm"

log = logging.getLogger("maas.gpu_check")


@dataclass
class Step:
    """One step's outcome."""

    name: str
    status: str = "not run"  # passed | failed | not run
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True)
class CheckOptions:
    """What to run: the target, the models, how long each measurement lasts."""

    out: Path  # the report only: a device call brings back few and small files
    work: Path  # the exported repository and Triton's folder
    target: str = GPU_TARGET
    models: tuple[str, ...] = MODELS
    measured: tuple[str, ...] = MEASURED
    batches: tuple[int, ...] = BATCHES
    seconds: float = 2.0
    reference: Path | None = None
    serve: bool = True
    stub_path: Path | None = None  # put first on the Python path of Triton's stubs only


class Report:
    """Steps in the order they ran, written as JSON and Markdown."""

    def __init__(self, options: CheckOptions) -> None:
        self.options = options
        self.steps: list[Step] = []

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        """Time a step; an exception fails it (recorded with its message), the run goes on."""
        current = Step(name)
        self.steps.append(current)
        started = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            yield current
            if current.status == "not run" and not current.reason:
                current.status = "passed"
        except Exception as error:  # every failure is reported, none ends the run
            current.status = "failed"
            current.reason = f"{type(error).__name__}: {error}"
            log.debug("%s", traceback.format_exc())
        except BaseException:  # stopped (the time limit's SIGTERM): say so, then stop
            current.status, current.reason = "failed", "stopped by the time limit"
            raise
        finally:
            current.seconds = round(time.perf_counter() - started, 1)
            line = f"   {current.status} in {current.seconds} s {current.reason}"
            print(line.rstrip(), flush=True)
            self.write()  # a run stopped part-way still leaves the steps it finished

    def find(self, name: str) -> Step | None:
        """A step by name."""
        return next((step for step in self.steps if step.name == name), None)

    def write(self) -> None:
        """report.json and report.md in the output folder."""
        self.options.out.mkdir(parents=True, exist_ok=True)
        data = {
            "options": {key: str(value) for key, value in asdict(self.options).items()},
            "steps": [asdict(step) for step in self.steps],
        }
        (self.options.out / "report.json").write_text(json.dumps(data, indent=2) + "\n")
        (self.options.out / "report.md").write_text(render_markdown(self))


def environment() -> dict[str, str]:
    """Python, torch, CUDA and the GPU this run sees."""
    import torch

    found = {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "cuda_available": str(torch.cuda.is_available()),
        "numpy": np.__version__,
        "cpus": str(os.cpu_count()),
    }
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        found |= {
            "gpu": torch.cuda.get_device_name(),
            "compute_capability": f"{major}.{minor}",
            "cuda": str(torch.version.cuda),
        }
    return found


def export_models(
    options: CheckOptions, repository: ModelRepository, step: Step, inputs: dict[str, Arrays]
) -> None:
    """Every model through the real exporter with the target alone; its gates decide.

    inputs gets the real evaluation inputs of each model that passed, for the measurements
    that follow; one model's failure does not keep the others from being exported.
    """
    from maas.export import export_model, get_spec

    failed = []
    for name in options.models:
        try:
            result = export_model(get_spec(name), repository, targets=[options.target])
        except MaasError as error:  # a gate refused it, or the target cannot run here
            step.detail[name] = {"status": "failed", "reasons": [str(error)]}
            failed.append(name)
            continue
        inputs[name] = result.built.eval_inputs
        (candidate,) = result.candidates
        step.detail[name] = {
            "status": candidate.status,
            "reasons": candidate.reasons,
            "measures": candidate.measures,
            "runtime": candidate.runtime,
        }
    if failed:
        raise MaasError(f"not exported: {', '.join(failed)}")


def reference_check(
    repository: ModelRepository, reference: Path, sentences: Arrays
) -> dict[str, Any]:
    """MiniLM's served embeddings of the real sentences against sentence-transformers' fp32."""
    expected = np.load(reference)["embeddings"]
    # Placed as `maas serve` places it: a KIND_GPU model on GPU 0, with its CUDA graphs.
    runner = ServedModelRunner.for_repository(repository, REFERENCE_MODEL)
    rows = split_rows(sentences)
    actual = np.concatenate([result["embeddings"] for result in runner.run(rows)])
    cosine = cosines(expected, actual)
    found = {"sentences": len(cosine), "min_cosine": float(cosine.min()), "goal": MIN_COSINE}
    if cosine.min() < MIN_COSINE:
        raise MaasError(f"min cosine {cosine.min():.6f} < {MIN_COSINE}: {found}")
    return found


def cosines(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity."""
    if expected.shape != actual.shape:
        raise MaasError(f"reference has shape {expected.shape}, the runner gave {actual.shape}")
    dots = np.sum(expected * actual, axis=1)
    norms = np.linalg.norm(expected, axis=1) * np.linalg.norm(actual, axis=1)
    result: np.ndarray = dots / np.maximum(norms, 1e-12)
    return result


def split_rows(inputs: Arrays) -> list[Arrays]:
    """One single-row request per row, as clients send them and Triton hands them on."""
    count = len(next(iter(inputs.values())))
    return [{name: array[i : i + 1] for name, array in inputs.items()} for i in range(count)]


def in_process(
    runner: ServedModelRunner, inputs: Arrays, sizes: list[int], seconds: float
) -> list[Throughput]:
    """The adapter's runner on formed batches of single-row requests, at each size."""
    speeds = []
    for size in sizes:
        # The warm-up call also captures the batch's CUDA graph.
        median = median_seconds(
            partial(runner.run, split_rows(cycled_batch(inputs, size))), seconds
        )
        speeds.append(Throughput(size, size / median, median * 1000.0))
    return speeds


def served(url: str, model: str, batch: Arrays, in_flight: int, seconds: float) -> Throughput:
    """Requests of one batch over gRPC with in_flight of them outstanding; samples/s."""
    # Not maas.clients' build_infer_inputs: importing maas.clients imports tritonclient's HTTP
    # client, whose dependencies (geventhttpclient, rapidjson) the device does not have.
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import np_to_triton_dtype

    def one_caller(timings: list[float], stop: float) -> None:
        client = grpcclient.InferenceServerClient(url)
        inputs = []
        for name, array in batch.items():
            tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        client.infer(model, inputs)  # warm-up
        while time.perf_counter() < stop:
            started = time.perf_counter()
            client.infer(model, inputs)
            timings.append(time.perf_counter() - started)
        client.close()

    per_caller: list[list[float]] = [[] for _ in range(in_flight)]
    stop = time.perf_counter() + seconds
    callers = [threading.Thread(target=one_caller, args=(t, stop)) for t in per_caller]
    started = time.perf_counter()
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    elapsed = time.perf_counter() - started
    timings = [t for caller in per_caller for t in caller]
    size = len(next(iter(batch.values())))
    return Throughput(size, len(timings) * size / elapsed, statistics.median(timings) * 1000.0)


def measure_in_process(
    options: CheckOptions,
    repository: ModelRepository,
    exported: dict[str, Arrays],
    step: Step,
) -> dict[str, dict[str, Any]]:
    """Each measured model's in-process speeds; batch 1 and the best batch."""
    from maas.export import get_spec

    found: dict[str, dict[str, Any]] = {}
    for name in (name for name in options.measured if name in exported):
        spec = get_spec(name)
        inputs = exported[name]
        sizes = [s for s in options.batches if s <= max(spec.batching.max_batch_size, 1)]
        runner = ServedModelRunner.for_repository(repository, name)
        speeds = in_process(runner, inputs, sizes, options.seconds)
        best = max(speeds, key=lambda speed: speed.samples_per_s)
        found[name] = {"inputs": inputs, "speeds": speeds, "best": best}
        step.detail[name] = {"speeds": [asdict(s) for s in speeds], "best_batch": best.batch}
    return found


@contextmanager
def stub_python_path(extra: Path | None) -> Iterator[None]:
    """PYTHONPATH with extra first while Triton starts (its stubs inherit it), then as it was."""
    before = os.environ.get("PYTHONPATH")
    if extra is not None:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra), before]))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def measure_served(
    options: CheckOptions,
    repository: ModelRepository,
    measured: dict[str, dict[str, Any]],
    step: Step,
) -> None:
    """Start Triton on the repository and measure batch 1 and the best batch over gRPC."""
    from maas.serve.embedded import EmbeddedServer, ServerOptions

    work = options.work / "triton"
    server_options = ServerOptions.on_free_ports(repository.root, workdir=work)
    server = EmbeddedServer(server_options)
    try:
        with stub_python_path(options.stub_path):
            server.start()
        step.detail["served_models"] = [f"{m.name}: {m.served_by}" for m in server.served]
        for name, found in measured.items():
            one = served(
                server.grpc_url, name, cycled_batch(found["inputs"], 1), 1, options.seconds
            )
            best_batch = cycled_batch(found["inputs"], found["best"].batch)
            best = served(server.grpc_url, name, best_batch, IN_FLIGHT, options.seconds)
            alone = {speed.batch: speed for speed in found["speeds"]}
            step.detail[name] = {
                "batch_1": asdict(one),
                "best": asdict(best),
                "ratio_batch_1": one.samples_per_s / alone[1].samples_per_s,
                "ratio_best": best.samples_per_s / found["best"].samples_per_s,
            }
    finally:
        step.detail["log_tail"] = server.log_tail(20)
        server.stop()
    short = [n for n in measured if step.detail[n]["ratio_best"] < SERVED_GOAL]
    if short:
        step.reason = f"served / in process under {SERVED_GOAL} at the best batch: {short}"
        step.status = "failed"


def run_check(options: CheckOptions) -> Report:
    """Every step; the report is written whatever passed."""
    report = Report(options)
    gpu = options.target == GPU_TARGET
    repository = ModelRepository(options.work / "model_repository")
    with report.step("environment") as step:
        step.detail = environment()
        if gpu and step.detail["cuda_available"] != "True":
            raise MaasError(f"{GPU_TARGET} needs a CUDA device and torch sees none")
    inputs: dict[str, Arrays] = {}
    with report.step("export") as step:
        export_models(options, repository, step, inputs)
    with report.step("sentence-transformers reference") as step:
        if options.reference is None or REFERENCE_MODEL not in options.models:
            step.reason = "no reference given, or MiniLM not in this run"
        elif REFERENCE_MODEL in inputs:
            sentences = inputs[REFERENCE_MODEL]
            step.detail = reference_check(repository, options.reference, sentences)
        else:
            step.reason = "MiniLM was not exported"
    measured: dict[str, dict[str, Any]] = {}
    with report.step("in process") as step:
        if not any(name in inputs for name in options.measured):
            step.reason = "no model to measure was exported"
        else:
            measured = measure_in_process(options, repository, inputs, step)
    with report.step("served over gRPC") as step:
        if not options.serve:
            step.reason = "not asked for (--no-serve)"
        elif not measured:
            step.reason = "nothing was measured in process"
        else:
            measure_served(options, repository, measured, step)
    return report


SPEED_COLUMNS = (
    "in process b1",
    "in process best",
    "served b1",
    "served best",
    "served / in process (b1, best)",
)


def speed_cell(speed: dict[str, Any]) -> str:
    """'b8: 1234.5/s, 6.48 ms'."""
    return f"b{speed['batch']}: {speed['samples_per_s']:.1f}/s, {speed['median_ms']:.2f} ms"


def render_markdown(report: Report) -> str:
    """The report for people: steps, then the speed table."""
    lines = ["# GPU check", "", "| step | status | seconds | note |", "|---|---|---|---|"]
    for step in report.steps:
        lines.append(f"| {step.name} | {step.status} | {step.seconds} | {step.reason} |")
    environment_step = report.find("environment")
    if environment_step is not None:
        found = environment_step.detail.items()
        lines += ["", "Environment: " + ", ".join(f"{key} {value}" for key, value in found)]
    alone, served_step = report.find("in process"), report.find("served over gRPC")
    if alone is not None and alone.detail:
        lines += ["", f"| model | {' | '.join(SPEED_COLUMNS)} |", "|---" * 6 + "|"]
        for model, found in alone.detail.items():
            speeds = {speed["batch"]: speed for speed in found["speeds"]}
            best = speeds[found["best_batch"]]
            row = [model, speed_cell(speeds[1]), speed_cell(best)]
            over = (served_step.detail.get(model) if served_step is not None else None) or {}
            if over:
                row += [speed_cell(over["batch_1"]), speed_cell(over["best"])]
                row.append(f"{over['ratio_batch_1']:.2f} ×, {over['ratio_best']:.2f} ×")
            else:
                row += ["—", "—", "—"]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the check; exit 0 when every step that ran passed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where the report goes")
    parser.add_argument(
        "--work", type=Path, help="for the repository and Triton (default: a temporary folder)"
    )
    parser.add_argument("--target", default=GPU_TARGET)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--measured", nargs="+", default=list(MEASURED))
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--reference", type=Path, help="reference.npz from gpu_pack")
    parser.add_argument("--stub-path", type=Path, help="first on the Triton stubs' Python path")
    parser.add_argument("--no-serve", action="store_true", help="in process only")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    quiet_transformers()
    logging.getLogger("maas.export").setLevel(logging.INFO)
    scratch = tempfile.TemporaryDirectory(prefix="maas-gpu-check-")
    options = CheckOptions(
        out=arguments.out,
        work=arguments.work or Path(scratch.name),
        target=arguments.target,
        models=tuple(arguments.models),
        measured=tuple(arguments.measured),
        batches=tuple(arguments.batches),
        seconds=arguments.seconds,
        reference=arguments.reference,
        serve=not arguments.no_serve,
        stub_path=arguments.stub_path,
    )
    # The script's time limit sends SIGTERM: unwind, so the server started here is stopped.
    before = signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    try:
        report = run_check(options)
    finally:
        signal.signal(signal.SIGTERM, before)
        scratch.cleanup()
    print((options.out / "report.md").read_text())
    return 0 if all(step.status != "failed" for step in report.steps) else 1


if __name__ == "__main__":
    sys.exit(main())
