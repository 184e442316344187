"""`maas doctor`: what this machine can serve and run, one line per check."""

from __future__ import annotations

import typer

from .doctor import run_checks


def doctor_command() -> None:
    """Report what this machine can serve and run."""
    for check in run_checks():
        mark = (
            typer.style("ok  ", fg=typer.colors.GREEN)
            if check.ok
            else typer.style("--  ", fg=typer.colors.YELLOW)
        )
        typer.echo(f"{mark}{check.name:22} {check.detail}")
