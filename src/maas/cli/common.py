"""What every command shares: option types, one-line errors, logging and stop signals."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from maas.base.errors import MaasError

if TYPE_CHECKING:
    from maas.clients import Protocol

MiB = 1024 * 1024
DEFAULT_REPOSITORY = Path(os.environ.get("MAAS_REPOSITORY", "model_repository"))
RepositoryOption = Annotated[
    Path, typer.Option("--repository", "-r", help="Triton model repository (env MAAS_REPOSITORY).")
]
UrlOption = Annotated[
    str | None,
    typer.Option(help="host:port of the server [default: localhost:8000 http, :8001 grpc]."),
]
ProtocolOption = Annotated[str, typer.Option(help="http or grpc.")]
ApiKeyOption = Annotated[
    str,
    typer.Option(
        envvar="MAAS_API_KEY", help="API key for a server that requires keys (env MAAS_API_KEY)."
    ),
]
HostOption = Annotated[str, typer.Option(help="Address to bind.")]
OutOption = Annotated[Path, typer.Option(help="Report folder.")]
DurationOption = Annotated[float, typer.Option(min=0.5, help="Measured seconds per level.")]
WarmupOption = Annotated[float, typer.Option(min=0.0, help="Unmeasured seconds per level.")]


def use_api_key(key: str) -> None:
    """Make the key the one every client and Locust process of this command sends."""
    if key:
        os.environ["MAAS_API_KEY"] = key  # read by the clients and inherited by subprocesses


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM as Ctrl-C: commands that start servers (soak, bench, demo) stop them."""
    raise KeyboardInterrupt


def stop_requested() -> threading.Event:
    """An event that Ctrl-C or SIGTERM sets, for commands that run until told to stop."""
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()  # only flag it: stopping inside a signal handler can deadlock on wait()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stopping


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's typed errors into one line on stderr and exit code 1."""
    try:
        yield
    except MaasError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None


class OwnProgressOnly(logging.Filter):
    """maas's own progress lines; other libraries' only when they report an error.

    onnxruntime's quantizer, for one, logs advice meant for its own users through the root
    logger ("Please consider to run pre-processing before quantization").
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep maas's records, and errors from anyone."""
        return record.name.startswith("maas") or record.levelno >= logging.ERROR


def setup_logging(verbose: bool = False) -> None:
    """Progress lines on stderr."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    if not verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(OwnProgressOnly())
        # transformers draws a bar per checkpoint it loads; export reports its own progress.
        # Read when huggingface_hub is first imported, which is after this.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def check_protocol(protocol: str) -> Protocol:
    """Refuse anything but http and grpc."""
    if protocol not in ("http", "grpc"):
        raise typer.BadParameter(f"protocol must be http or grpc, got {protocol!r}")
    return "http" if protocol == "http" else "grpc"


def echo_lines(lines: Iterable[str]) -> None:
    """Print each line on stdout."""
    for line in lines:
        typer.echo(line)
