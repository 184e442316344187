"""Streamed generation side by side in one run: in-process, one-at-a-time, in-flight batching.

The in-process limit (one stream, no server), a one-at-a-time service, and maas with in-flight
batching at several numbers of concurrent streams.

Every system decodes greedily with the same ONNX decode step and the same prompts (the first
sentences of Python's own help topics), `max_tokens` each. Per stream: time to first token
(TTFT: request sent → first text), inter-token latency (ITL: between consecutive texts) and
tokens. Aggregate tokens/s counts the texts that arrived inside the measured window. A text
is one token: the model's tokens are byte-level BPE over ASCII documentation, so a text is
held back only where a character spans tokens (rare here), and then two tokens count as one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from maas.base.sentences import help_topic_prompts
from maas.base.served.generation import (
    GENERATION_FILE,
    STEP_FILE,
    ModelShape,
    onnx_step,
    tokenizer_file,
    tokens_alone,
)
from maas.base.triton.repository import ModelRepository
from maas.clients.generate import TextGenerator, http_chunks
from maas.clients.transport import ClientOptions, Protocol
from maas.export import export_model
from maas.export.models.tinygpt import Recipe, tinygpt_spec
from maas.serve import local_options, serve

from .baselines import uvicorn_service
from .report import markdown_table, write_pair

GENERATE_SUFFIX = "_generate"
# The speed-work decoder: tinygpt's code and graph, 6 layers of width 512 (20M parameters),
# seeded random weights (its text is meaningless). At one token per step it reads every weight
# per token, as large models do; tinygpt is so small that per-token messaging dominates instead.
SPEED_MODEL = "gptwide_random"
SPEED_RECIPE = Recipe(vocab_size=2048, layers=6, width=512, heads=8, positions=256, steps=0)


@dataclass(frozen=True)
class GenerationBenchOptions:
    """What to run: the model, the concurrency levels, how long each level is measured."""

    repository: Path
    out: Path
    model: str = "tinygpt"
    concurrency: tuple[int, ...] = (1, 4, 16)
    duration_s: float = 15.0
    warmup_s: float = 3.0
    max_tokens: int = 48
    protocol: str = "grpc"


@dataclass
class Streams:
    """What the streams of one level saw."""

    ttft_s: list[float] = field(default_factory=list)
    itl_s: list[float] = field(default_factory=list)
    tokens_in_window: int = 0
    completed: int = 0
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LevelResult:
    """One system at one concurrency."""

    system: str
    concurrency: int
    tokens_per_s: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    itl_p50_ms: float
    itl_p99_ms: float
    streams: int
    failures: int


def percentile_ms(values: list[float], q: float) -> float:
    """A percentile in milliseconds; NaN without values."""
    return float(np.percentile(values, q) * 1000.0) if values else float("nan")


def run_streams(
    open_stream: Callable[[int, str], Iterator[str]],
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    texts: list[str],
) -> Streams:
    """`concurrency` callers, each streaming one prompt after another until the window ends."""
    seen = Streams()
    lock = threading.Lock()
    start = time.monotonic() + warmup_s
    end = start + duration_s

    def caller(index: int) -> None:
        turn = index
        while time.monotonic() < end:
            prompt = texts[turn % len(texts)]
            turn += concurrency
            sent = time.monotonic()
            arrivals = []
            try:
                for _ in open_stream(index, prompt):
                    arrivals.append(time.monotonic())
            except Exception as error:  # every failure is reported, none stops the run
                with lock:
                    seen.failures.append(f"{type(error).__name__}: {error}")
                continue
            with lock:
                if arrivals and sent >= start and arrivals[-1] <= end:
                    seen.ttft_s.append(arrivals[0] - sent)
                    seen.itl_s.extend(np.diff(arrivals).tolist())
                    seen.completed += 1
                seen.tokens_in_window += sum(start <= at <= end for at in arrivals)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seen


def level(system: str, concurrency: int, seen: Streams, duration_s: float) -> LevelResult:
    """The numbers of one level."""
    return LevelResult(
        system,
        concurrency,
        seen.tokens_in_window / duration_s,
        percentile_ms(seen.ttft_s, 50),
        percentile_ms(seen.ttft_s, 99),
        percentile_ms(seen.itl_s, 50),
        percentile_ms(seen.itl_s, 99),
        seen.completed,
        len(seen.failures),
    )


def in_process(folder: Path, texts: list[str], max_tokens: int, duration_s: float) -> Streams:
    """One stream at a time, in this process, no server: the limit for one stream."""
    from tokenizers import Tokenizer

    step, shape = onnx_step(folder / STEP_FILE), ModelShape.load(folder / GENERATION_FILE)
    tokenizer = Tokenizer.from_file(str(tokenizer_file(folder)))

    def stream(_: int, prompt: str) -> Iterator[str]:
        ids = tokenizer.encode(prompt).ids
        for token in tokens_alone(step, shape, ids, max_tokens):
            yield tokenizer.decode([token])

    return run_streams(stream, 1, duration_s, 1.0, texts)


def generation_repository(options: GenerationBenchOptions, folder: Path) -> Path:
    """A repository with the model's step and generation service only (links, no copies)."""
    source = ModelRepository(options.repository)
    folder.mkdir(parents=True)
    for name in (options.model, options.model + GENERATE_SUFFIX):
        (folder / name).symlink_to(source.model_dir(name).resolve(), target_is_directory=True)
    return folder


def latest_version_folder(options: GenerationBenchOptions) -> Path:
    """The step model's newest version folder."""
    repository = ModelRepository(options.repository)
    version = max(repository.versions(options.model))
    return repository.version_dir(options.model, version)


def run_generation_bench(
    options: GenerationBenchOptions, progress: Callable[[str], None]
) -> list[LevelResult]:
    """Every system, one after another, in one run."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="maas-genbench-") as scratch:
        if options.model == SPEED_MODEL:
            progress(f"exporting {SPEED_MODEL} (seeded random weights, speed work only)")
            speed = ModelRepository(Path(scratch) / "speed")
            export_model(tinygpt_spec(SPEED_RECIPE, SPEED_MODEL), speed)
            options = replace(options, repository=speed.root)
        return measure_systems(options, progress)


def measure_systems(
    options: GenerationBenchOptions, progress: Callable[[str], None]
) -> list[LevelResult]:
    """The in-process limit, the one-at-a-time service, maas: one after another."""
    import tempfile

    texts, results = help_topic_prompts(), []
    folder = latest_version_folder(options)
    progress("in-process, one stream")
    results.append(level("in-process", 1, in_process(folder, texts, options.max_tokens, 10.0), 10))
    settings = {"MAAS_GENERATION_FOLDER": str(folder)}
    with uvicorn_service("maas.benchmarks.naive_generation:app", settings) as url:
        client = ClientOptions.create(url, "http", 120.0)

        def naive(_: int, prompt: str) -> Iterator[str]:
            body = {"max_tokens": options.max_tokens}
            for piece in http_chunks(client, options.model, prompt, body, True):
                if piece.text:
                    yield piece.text

        for users in options.concurrency:
            progress(f"one-at-a-time service, {users} streams")
            seen = run_streams(naive, users, options.duration_s, options.warmup_s, texts)
            results.append(level("one-at-a-time", users, seen, options.duration_s))
    with tempfile.TemporaryDirectory(prefix="maas-genbench-") as scratch:
        repository = generation_repository(options, Path(scratch) / "repository")
        with serve(local_options(repository)) as server:
            url = server.endpoints.url(options.protocol)
            service = options.model + GENERATE_SUFFIX
            for users in options.concurrency:
                progress(f"maas ({options.protocol}), {users} streams")
                seen = maas_streams(service, url, users, options, texts)
                results.append(level("maas", users, seen, options.duration_s))
    return results


def maas_streams(
    service: str, url: str, users: int, options: GenerationBenchOptions, texts: list[str]
) -> Streams:
    """`users` streams through the gateway, each caller with its own client."""
    protocol: Protocol = "grpc" if options.protocol == "grpc" else "http"
    generators = [TextGenerator(service, url, protocol, 120.0) for _ in range(users)]

    def stream(index: int, prompt: str) -> Iterator[str]:
        return generators[index].stream(prompt, max_tokens=options.max_tokens)

    try:
        return run_streams(stream, users, options.duration_s, options.warmup_s, texts)
    finally:
        for generator in generators:
            generator.close()


def goals(results: list[LevelResult]) -> list[tuple[str, str, str, bool]]:
    """(goal, target, measured, met) for the issue's goals."""
    by = {(r.system, r.concurrency): r for r in results}
    most = max(r.concurrency for r in results if r.system == "maas")
    maas, naive = by[("maas", most)], by[("one-at-a-time", most)]
    alone, one = by[("in-process", 1)], by[("maas", 1)]
    ratio = maas.tokens_per_s / naive.tokens_per_s
    ttft, itl = one.ttft_p50_ms / alone.ttft_p50_ms, one.itl_p50_ms / alone.itl_p50_ms
    return [
        (
            f"aggregate tokens/s at {most} streams vs the one-at-a-time service",
            "≥ 4×",
            f"{maas.tokens_per_s:.0f} vs {naive.tokens_per_s:.0f} = {ratio:.2f}×",
            ratio >= 4.0,
        ),
        (
            "one stream: time to first token vs in-process (p50)",
            "≤ 1.2×",
            f"{one.ttft_p50_ms:.2f} vs {alone.ttft_p50_ms:.2f} ms = {ttft:.2f}×",
            ttft <= 1.2,
        ),
        (
            "one stream: inter-token latency vs in-process (p50)",
            "≤ 1.2×",
            f"{one.itl_p50_ms:.2f} vs {alone.itl_p50_ms:.2f} ms = {itl:.2f}×",
            itl <= 1.2,
        ),
    ]


def plot(results: list[LevelResult], out: Path) -> list[str]:
    """TTFT, ITL and tokens/s against concurrency, one line per served system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for metric, label in (
        ("tokens_per_s", "aggregate tokens/s"),
        ("ttft_p50_ms", "time to first token p50 (ms)"),
        ("itl_p50_ms", "inter-token latency p50 (ms)"),
        ("itl_p99_ms", "inter-token latency p99 (ms)"),
    ):
        figure, axes = plt.subplots(figsize=(5, 3.5))
        for system in ("one-at-a-time", "maas"):
            rows = [r for r in results if r.system == system]
            values = [getattr(r, metric) for r in rows]
            axes.plot([r.concurrency for r in rows], values, "o-", label=system)
        alone = next(r for r in results if r.system == "in-process")
        axes.axhline(getattr(alone, metric), color="grey", linestyle=":", label="in-process, 1")
        axes.set_xscale("log", base=2)
        axes.set_xlabel("concurrent streams")
        axes.set_ylabel(label)
        axes.legend()
        figure.tight_layout()
        name = f"{metric}.png"
        figure.savefig(out / name, dpi=110)
        plt.close(figure)
        names.append(name)
    return names


def write_generation_report(
    results: list[LevelResult], options: GenerationBenchOptions, machine: str
) -> Path:
    """report.md with the goals, every level and the plots; results.json beside it."""
    options.out.mkdir(parents=True, exist_ok=True)
    rows = [
        (
            r.system,
            r.concurrency,
            f"{r.tokens_per_s:.1f}",
            f"{r.ttft_p50_ms:.2f}",
            f"{r.ttft_p99_ms:.2f}",
            f"{r.itl_p50_ms:.2f}",
            f"{r.itl_p99_ms:.2f}",
            r.streams,
            r.failures,
        )
        for r in results
    ]
    header = (
        *("system", "streams", "tokens/s", "TTFT p50 ms", "TTFT p99 ms"),
        *("ITL p50 ms", "ITL p99 ms", "completed", "failed"),
    )
    goal_rows = [(g, t, m, "yes" if met else "no") for g, t, m, met in goals(results)]
    plots = plot(results, options.out)
    text = "\n\n".join(
        [
            f"# Streamed generation: {options.model}",
            f"{machine}. Greedy, {options.max_tokens} tokens per request, prompts from Python's "
            f"help topics; {options.duration_s:.0f} s per level after {options.warmup_s:.0f} s "
            f"of warm-up; maas over {options.protocol} through the gateway. Medians of one run, "
            "side by side.",
            markdown_table(("goal", "target", "measured", "met"), goal_rows),
            markdown_table(header, rows),
            "\n".join(f"![{name}]({name})" for name in plots),
        ]
    )
    return write_pair(options.out, "report", [asdict(r) for r in results], text)
