"""The server counts real tokens and computed positions; length buckets waste less than padding."""

from __future__ import annotations

from maas.benchmarks.text_padding import read_counters, run_padding_benchmark, send_concurrently
from tests.conftest import Exported, RunningServer


def test_server_counts_real_and_computed_tokens_for_text_requests(server: RunningServer) -> None:
    metrics_url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    before = read_counters(metrics_url, "minilm")
    send_concurrently(
        server.grpc_url, "minilm", ["short", "a somewhat longer sentence here"] * 4, 4
    )
    after = read_counters(metrics_url, "minilm")
    real = after["maas_real_tokens_total"] - before["maas_real_tokens_total"]
    computed = after["maas_computed_tokens_total"] - before["maas_computed_tokens_total"]
    assert real == 4 * (3 + 7)  # [CLS] short [SEP]; [CLS] a somewhat longer sentence here [SEP]
    assert computed >= real


def test_length_buckets_compute_less_padding_than_longest_on_the_same_workload(
    exported: Exported,
) -> None:
    results = {
        item.strategy: item for item in run_padding_benchmark(exported.repository.root, copies=1)
    }
    buckets, longest = results["buckets"], results["longest"]
    assert buckets.measured and longest.measured
    assert buckets.real_tokens == longest.real_tokens > 0  # the same texts reached the model
    assert buckets.waste < longest.waste
    assert buckets.waste <= 0.25 + 1e-9  # the adapter's bound per bucket
    fixed = next(item for name, item in results.items() if name.startswith("fixed 256"))
    assert fixed.waste > longest.waste
