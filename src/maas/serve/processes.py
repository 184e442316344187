"""Ending the child processes the server runs (tritonserver, nginx)."""

from __future__ import annotations

import signal
import subprocess


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
