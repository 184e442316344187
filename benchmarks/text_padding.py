"""How much compute goes to padding on a mixed-length text workload, measured on the server.

For each padding strategy of the serving adapter, start the embedded server, send the same
shuffled real sentences as concurrent single-text requests, and read the server's own token
counters (real tokens vs computed positions) before and after. Padding every request to a fixed
length is not a server mode; its waste is computed from the same workload's token lengths.
"""

from __future__ import annotations

import random
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from maas.base.sentences import SENTENCES
from maas.base.served.text import TextTokenizer
from maas.base.triton.parameters import PADDING_STRATEGIES as STRATEGIES
from maas.base.triton.repository import ModelRepository
from maas.clients import TextEmbedder
from maas.serve import local_options, serve

from .report import write_pair
from .workloads import text_tokenizer

COUNTERS = ("maas_real_tokens_total", "maas_computed_tokens_total", "maas_runtime_calls_total")
WARMUP_REQUESTS = 8


@dataclass(frozen=True)
class PaddingResult:
    """One way of padding: tokens computed per real token, and what it cost in time."""

    strategy: str
    measured: bool  # False: computed from token lengths, not run on the server
    requests: int
    real_tokens: int
    computed_tokens: int
    runtime_calls: int
    seconds: float

    @property
    def waste(self) -> float:
        """Padded positions per real token."""
        return (self.computed_tokens - self.real_tokens) / max(self.real_tokens, 1)

    @property
    def throughput(self) -> float:
        """Texts per second; NaN where not measured."""
        return self.requests / self.seconds if self.measured and self.seconds else float("nan")


def mixed_length_workload(copies: int, seed: int = 0) -> list[str]:
    """The real sentence set, repeated and shuffled: mostly short texts, a few long ones."""
    texts = list(SENTENCES) * copies
    random.Random(seed).shuffle(texts)
    return texts


def token_lengths(tokenizer: TextTokenizer, texts: Sequence[str]) -> list[int]:
    """Tokens per text as the served tokenizer makes them: truncated, special tokens included."""
    _, mask = tokenizer.tokenize(list(texts))
    return [int(row.sum()) for row in mask]


def fixed_padding(lengths: Sequence[int], length: int) -> PaddingResult:
    """Every text padded (or cut) to one length, as a tokenizer with padding='max_length' does."""
    kept = [min(tokens, length) for tokens in lengths]
    cut = sum(tokens > length for tokens in lengths)
    label = f"fixed {length}" + (f" (cuts {cut} texts)" if cut else "")
    return PaddingResult(label, False, len(lengths), sum(kept), len(lengths) * length, 0, 0.0)


def read_counters(metrics_url: str, model: str) -> dict[str, int]:
    """The adapter's token counters for model from Triton's Prometheus endpoint."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    values = dict.fromkeys(COUNTERS, 0)
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        if name in values and f'model="{model}"' in rest:
            values[name] = int(float(rest.rsplit(" ", 1)[1]))
    return values


def send_concurrently(url: str, model: str, texts: Sequence[str], concurrency: int) -> None:
    """One text per request from concurrency workers, each with its own client."""
    shards = [texts[worker::concurrency] for worker in range(concurrency)]

    def run(shard: Sequence[str]) -> None:
        with TextEmbedder(model, url=url, protocol="grpc") as embedder:
            for text in shard:
                embedder.embed([text])

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(run, shards))


def measure_strategy(
    repository: Path, model: str, strategy: str, texts: Sequence[str], concurrency: int
) -> PaddingResult:
    """Serve with one padding strategy and count what the runtime computed for texts."""
    with tempfile.TemporaryDirectory(prefix="maas-padding-") as workdir:
        options = local_options(
            repository,
            gateway=False,
            workdir=Path(workdir),
            exit_timeout_s=5,
            padding_strategy=strategy,
        )
        with serve(options) as server:
            send_concurrently(server.grpc_url, model, texts[:WARMUP_REQUESTS], concurrency)
            before = read_counters(server.metrics_url, model)
            started = time.perf_counter()
            send_concurrently(server.grpc_url, model, texts, concurrency)
            seconds = time.perf_counter() - started
            after = read_counters(server.metrics_url, model)
    real, computed, calls = (after[name] - before[name] for name in COUNTERS)
    return PaddingResult(strategy, True, len(texts), real, computed, calls, seconds)


def run_padding_benchmark(
    repository: Path, model: str = "minilm", concurrency: int = 8, copies: int = 4
) -> list[PaddingResult]:
    """Fixed-length padding (computed) and every server strategy (measured), same workload."""
    texts = mixed_length_workload(copies)
    tokenizer = text_tokenizer(ModelRepository(repository), model)
    lengths = token_lengths(tokenizer, texts)
    results = [fixed_padding(lengths, 128), fixed_padding(lengths, tokenizer.max_length)]
    results += [measure_strategy(repository, model, s, texts, concurrency) for s in STRATEGIES]
    return results


def render_table(results: Sequence[PaddingResult]) -> str:
    """A Markdown table of the results."""
    lines = [
        "| padding | how | real tokens | computed positions | waste (padded/real) "
        "| runtime calls | texts/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for item in results:
        how = "measured on the server" if item.measured else "computed from token lengths"
        speed = f"{item.throughput:.1f}" if item.measured else "–"
        calls = str(item.runtime_calls) if item.measured else "–"
        lines.append(
            f"| {item.strategy} | {how} | {item.real_tokens} | {item.computed_tokens} | "
            f"{item.waste:.1%} | {calls} | {speed} |"
        )
    return "\n".join(lines)


def write_report(results: Sequence[PaddingResult], folder: Path, header: str) -> Path:
    """padding.md and padding.json in folder; returns the Markdown path."""
    rows = [
        {**asdict(item), "waste": item.waste, "throughput": item.throughput} for item in results
    ]
    return write_pair(folder, "padding", rows, f"{header}\n\n{render_table(results)}")
