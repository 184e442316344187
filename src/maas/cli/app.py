"""The `maas` command line: the Typer app and its commands, each in a module of its own."""

from __future__ import annotations

import os
import signal

import typer

from .bench_cmd import (
    bench_command,
    bench_front_command,
    bench_generate_command,
    bench_keys_command,
    bench_padding_command,
    bench_peers_command,
    bench_suite_command,
    bench_targets_command,
    soak_command,
)
from .common import interrupt
from .demo_cmd import demo_command
from .deploy_cmd import deploy_app
from .doctor_cmd import doctor_command
from .export_cmd import export_command
from .infer_cmd import infer_command
from .keys_cmd import keys_app, usage_command
from .monitor_cmd import monitor_command, top_command
from .plan_cmd import plan_command
from .serve_cmd import front_command, serve_command

app = typer.Typer(
    help="Model as a service on Triton: export models, serve them, call and benchmark them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """Model as a service on Triton."""
    signal.signal(signal.SIGTERM, interrupt)  # `serve` and `front` install their own
    # Hugging Face's progress bars and notices ("Loading weights …") are not the user's output;
    # read once when transformers is first imported, so set before any command imports it.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


# In the order `maas --help` lists them.
COMMANDS = (
    ("export", export_command),
    ("serve", serve_command),
    ("front", front_command),
    ("infer", infer_command),
    ("usage", usage_command),
    ("monitor", monitor_command),
    ("top", top_command),
    ("bench", bench_command),
    ("bench-suite", bench_suite_command),
    ("bench-peers", bench_peers_command),
    ("bench-front", bench_front_command),
    ("bench-keys", bench_keys_command),
    ("soak", soak_command),
    ("bench-padding", bench_padding_command),
    ("bench-targets", bench_targets_command),
    ("bench-generate", bench_generate_command),
    ("plan", plan_command),
    ("doctor", doctor_command),
    ("demo", demo_command),
)
for name, command in COMMANDS:
    app.command(name)(command)
app.add_typer(keys_app, name="keys")
app.add_typer(deploy_app, name="deploy")

if __name__ == "__main__":
    app()
