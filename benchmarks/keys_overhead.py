"""What keys and metering cost at the gateway: the same Triton behind two gateways, one run.

One `maas serve` stack runs with a key file and the audit log (its gateway identifies the
tenant, checks its model and limits, logs and meters every request); a second gateway with the
same per-model admission but no keys fronts the same Triton. Each case alternates the two,
several rounds, medians compared. The goals are issue 17's: at one user, at most 0.1 ms added to
the median; at saturation, at least 0.95 × the open gateway's throughput.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path

from maas.base.triton.endpoints import free_port
from maas.benchmarks.fingerprint import fingerprint, render
from maas.benchmarks.front_overhead import (
    FrontBenchOptions,
    FrontCase,
    FrontResult,
    Route,
    measure_routes,
)
from maas.benchmarks.report import markdown_table, write_pair
from maas.serve import local_options, serve
from maas.serve.gateway import Gateway
from maas.serve.keys import KeyFile, TenantPolicy

log = logging.getLogger(__name__)

P50_GOAL_MS = 0.1
THROUGHPUT_GOAL = 0.95
CASES = (
    FrontCase("digits_cnn", 1, "http", "one user, small tensors", "latency"),
    FrontCase("digits_cnn", 1, "grpc", "one user, small tensors", "latency"),
    FrontCase("resnet50", 8, "grpc", "saturation, 602 KB tensors per request", "throughput"),
)


def goal_of(result: FrontResult) -> tuple[str, bool]:
    """The case's goal in words, and whether it was met."""
    if result.case.judged_by == "latency":
        return f"p50 added ≤ {P50_GOAL_MS} ms", result.p50_added_ms <= P50_GOAL_MS
    return f"ratio ≥ {THROUGHPUT_GOAL}", result.throughput_ratio >= THROUGHPUT_GOAL


def run_keys_overhead(options: FrontBenchOptions) -> tuple[list[FrontResult], dict[str, object]]:
    """Start the keyed stack and an open gateway beside it; measure every case."""
    with tempfile.TemporaryDirectory(prefix="maas-bench-keys-") as scratch:
        folder = Path(scratch)
        keys, secret = KeyFile().create("bench", TenantPolicy())
        keys.save(folder / "keys.json")
        stack_options = replace(
            local_options(options.repository, workdir=folder / "serve"),
            key_file=folder / "keys.json",
            audit_log=folder / "audit.jsonl",
        )
        with serve(stack_options) as stack:
            keyed = stack.gateway
            assert keyed is not None
            open_options = replace(
                keyed.options,
                http_port=free_port(),
                grpc_port=free_port(),
                metrics_port=free_port(),
                key_file=None,
                audit_socket=None,
            )
            with Gateway(open_options, folder / "open-gateway") as opened:
                print_ = fingerprint(stack.triton.http_url)
                results = []
                for case in CASES:
                    port = (
                        open_options.grpc_port
                        if case.protocol == "grpc"
                        else open_options.http_port
                    )
                    routes = {
                        "direct": Route(f"127.0.0.1:{port}", opened),
                        "front": Route(stack.endpoints.url(case.protocol), keyed, secret),
                    }
                    results.append(measure_routes(options, case, routes, stack.triton.http_url))
    return results, print_


def report_markdown(results: list[FrontResult], options: FrontBenchOptions, print_: str) -> str:
    """The report: one row per case, the goals, the machine."""
    rows = []
    for r in results:
        goal, met = goal_of(r)
        rows.append(
            (
                r.case.label, r.case.what, f"{r.direct_rps:.1f}", f"{r.front_rps:.1f}",
                f"{r.throughput_ratio:.3f}", f"{r.direct_p50_ms:.3f}", f"{r.front_p50_ms:.3f}",
                f"{r.p50_added_ms:+.3f}", f"{r.direct_p99_ms:.2f} / {r.front_p99_ms:.2f}",
                f"{r.gateway_cpu_us:.0f}", r.failures, f"{goal}: {'met' if met else 'MISSED'}",
            )
        )  # fmt: skip
    table = markdown_table(
        ("case", "what it shows", "open req/s", "keyed req/s", "ratio", "open p50 ms",
         "keyed p50 ms", "p50 added ms", "p99 ms open / keyed", "keyed gateway CPU µs/req",
         "failed", "goal"),
        rows,
    )  # fmt: skip
    return f"""# What keys, limits and metering cost at the gateway

One Triton behind two gateways with the same per-model admission: "open" (no keys) and "keyed"
(key → tenant, model access, in-flight, rate and quota checks, one audit line per request sent
to `maas serve`, which writes it and meters it). Each case ran its two routes alternately,
{options.rounds} rounds of {options.duration_s:.0f} s (+{options.warmup_s:.0f} s warm-up),
closed loop; medians shown. One user: back-to-back `tritonclient` calls from one lean loop;
saturation: Locust, 8 users. The keyed tenant has no limits, so nothing is refused: this is the
cost of checking, not of refusing.

{table}

{print_}
"""


def write_keys_report(
    results: list[FrontResult], options: FrontBenchOptions, print_: dict[str, object]
) -> Path:
    """report.md and report.json in options.out."""
    rows = [
        {"case": r.case.label, "goal": goal_of(r)[0], "goal_met": goal_of(r)[1],
         "open_rps": r.direct_rps, "keyed_rps": r.front_rps, "ratio": r.throughput_ratio,
         "open_p50_ms": r.direct_p50_ms, "keyed_p50_ms": r.front_p50_ms,
         "p50_added_ms": r.p50_added_ms, "open_p99_ms": r.direct_p99_ms,
         "keyed_p99_ms": r.front_p99_ms, "keyed_gateway_cpu_us": r.gateway_cpu_us,
         "failures": r.failures}
        for r in results
    ]  # fmt: skip
    return write_pair(
        options.out, "report", rows, report_markdown(results, options, render(print_))
    )
