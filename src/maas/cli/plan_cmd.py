"""`maas plan`: replicas and the autoscaler's target from a measured per-replica curve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import user_errors

DEFAULT_RESULTS = Path("benchmarks/results/reference/results.json")


def plan_command(
    model: Annotated[str, typer.Option(help="The model as measured, e.g. minilm_text.")],
    rate: Annotated[float, typer.Option(help="Requests/s to serve in all.")],
    p99_ms: Annotated[float, typer.Option("--p99-ms", help="p99 goal per request, in ms.")],
    results: Annotated[
        Path, typer.Option(help="results.json of `maas bench` or `maas bench-suite`.")
    ] = DEFAULT_RESULTS,
    protocol: Annotated[str, typer.Option(help="http or grpc, if both were measured.")] = "",
    shm: Annotated[bool, typer.Option(help="The run that sent inputs by shared memory.")] = False,
    loop: Annotated[str, typer.Option(help="closed or open, if both were measured.")] = "",
) -> None:
    """Replicas needed for a rate at a p99 goal, and the autoscaler's queue-time target."""
    from maas.benchmarks.plan import PlanError, choose_run, load_runs, make_plan, render

    with user_errors():
        if loop not in ("", "closed", "open"):
            raise PlanError(f"--loop must be closed or open, got '{loop}'")
        runs, fingerprint = load_runs(results)
        open_loop = None if not loop else loop == "open"
        run = choose_run(runs, model, protocol, shm, open_loop)
        typer.echo(render(make_plan(run, rate, p99_ms), str(results), fingerprint))
