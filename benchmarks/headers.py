"""The headers of the padding and target reports: what ran, on which machine, from which command."""

from __future__ import annotations

import os
from collections.abc import Sequence

from maas.base.machine import cpu_model_and_flags

from .text_padding import PaddingResult


def machine_line() -> str:
    """'Machine: <CPU>; <features>; <n> cores'."""
    model, features = cpu_model_and_flags()
    return f"Machine: {model}; {', '.join(features) or 'no AVX-512/AMX'}; {os.cpu_count()} cores"


def padding_header(
    model: str, results: Sequence[PaddingResult], concurrency: int, copies: int
) -> str:
    """Header of padding.md, as `maas bench-padding` writes it."""
    return (
        f"# Padding waste: {model}, {results[0].requests} single-text requests, "
        f"{concurrency} concurrent clients, gRPC\n\n{machine_line()}; "
        f"`maas bench-padding --concurrency {concurrency} --copies {copies}`; "
        "all rows from one run."
    )


def targets_header(seconds: float) -> str:
    """Header of targets.md, as `maas bench-targets` writes it."""
    return (
        "# Export targets, in-process throughput (samples/s)\n\n"
        f"{machine_line()}; `maas bench-targets --seconds {seconds}`; medians of per-call times, "
        "all rows from one run, inputs are each model's real evaluation data."
    )
