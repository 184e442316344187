"""Starting and ending what the server runs (tritonserver, the gateway) as context managers."""

from __future__ import annotations

import signal
import subprocess
from types import TracebackType
from typing import TypeVar


def end_process(process: subprocess.Popen[bytes], stop: signal.Signals, timeout_s: float) -> None:
    """Send the process its graceful stop signal; SIGKILL it if it has not exited in time."""
    if process.poll() is not None:
        return
    process.send_signal(stop)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


S = TypeVar("S", bound="Service")  # typing.Self needs Python 3.11


class Service:
    """A context manager over start() and stop(): `with X(options) as x:` runs it for the block."""

    def start(self: S) -> S:
        """Start; return self once ready."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop and clean up; safe to call twice."""
        raise NotImplementedError

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
