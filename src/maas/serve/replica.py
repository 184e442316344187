"""One tritonserver of the stack and the loop that keeps it up.

The loop notices within a poll interval that the server died, logs why, buries what it left
(Python stubs, shared-memory regions) and starts it again with exponential backoff. A model
whose Python stub died is reloaded through the repository API (Triton 2.51 keeps calling
such a model ready and fails every request). A rolling update restarts the server on purpose:
meanwhile the loop leaves it alone.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass

from maas.base.errors import ServerError

from .embedded import EmbeddedServer
from .stack_metrics import Restarts
from .stubs import Stub, remove_regions

log = logging.getLogger("maas.serve")


@dataclass(frozen=True)
class RestartPolicy:
    """How the watchdog restarts a dead server: exponential backoff, reset after a calm spell."""

    poll_s: float = 0.2  # how often the server and its Python stubs are checked
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    calm_s: float = 60.0  # up this long without dying: the next crash starts at first_delay_s

    def delay(self, crashes_in_a_row: int) -> float:
        """Seconds to wait before restart number crashes_in_a_row (1-based)."""
        return float(min(self.max_delay_s, self.first_delay_s * 2 ** (crashes_in_a_row - 1)))


def describe_exit(code: int) -> str:
    """'killed by SIGSEGV' / 'exited with code 1'."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Replica:
    """A tritonserver, its number among the stack's replicas, and its watchdog loop."""

    def __init__(
        self,
        index: int,
        server: EmbeddedServer,
        label: str,
        policy: RestartPolicy,
        restarts: Restarts,
        stopping: threading.Event,
    ) -> None:
        self.index, self.server, self.label = index, server, label
        self.policy, self.restarts, self._stopping = policy, restarts, stopping
        # Held by whoever restarts the server: the loop after a crash, or a rolling update.
        self.restarting = threading.Lock()

    def watch(self) -> None:
        """Until the stack stops: revive dead stubs, restart a dead server with backoff."""
        policy = self.policy
        crashes_in_a_row = 0
        up_since = time.monotonic()
        stubs = self.server.stubs()
        while not self._stopping.wait(policy.poll_s):
            if not self.restarting.acquire(blocking=False):
                stubs = []  # a rolling update is restarting it: its stubs are not ours to judge
                continue
            try:
                if self.server.running:
                    stubs = self.revive_stubs(stubs) if stubs else self.server.stubs()
                    continue
                code = self.server.returncode
                if time.monotonic() - up_since > policy.calm_s:
                    crashes_in_a_row = 0
                crashes_in_a_row += 1
                delay = policy.delay(crashes_in_a_row)
                log.error(
                    "%s %s; restart %d in %.1f s; its log ends:\n%s",
                    self.label,
                    "is not running" if code is None else describe_exit(code),
                    crashes_in_a_row,
                    delay,
                    self.server.log_tail(lines=5),
                )
                self.bury(stubs)
                if self._stopping.wait(delay) or not self.relaunch():
                    return
                up_since = time.monotonic()  # the calm spell counts from this attempt
                if not self.server.running:
                    continue  # died or timed out starting: the next poll backs off further
                log.warning("%s is back and ready (restart %d)", self.label, self.restarts.add())
                stubs = self.server.stubs()
            finally:
                self.restarting.release()

    def bury(self, stubs: list[Stub]) -> None:
        """After a crash: kill the stubs left behind, reap the server, free its regions."""
        self.server.kill_group()
        self.server.stop()  # reap it and free its ports
        remove_dead_regions({stub.region for stub in stubs})

    def revive_stubs(self, known: list[Stub]) -> list[Stub]:
        """Reload every model whose Python stub died while Triton still calls it ready.

        Triton 2.51 does not restart a dead stub: the model stays "ready" and every request
        fails with "Stub process ... is not healthy". A model unloaded on purpose is not ready.
        """
        current = self.server.stubs()
        alive = {stub.pid for stub in current}
        dead = [stub for stub in known if stub.pid not in alive]
        if not dead:
            return current
        for model in sorted({stub.model for stub in dead}):
            now = sum(1 for stub in current if stub.model == model)
            before = sum(1 for stub in known if stub.model == model)
            if now >= before or not self.server.model_ready(model):
                continue  # replaced by a reload, or unloaded on purpose
            log.error("the Python stub of model %s died; reloading the model", model)
            try:
                self.server.reload_model(model)
            except ServerError as failure:
                log.error("%s", failure)
                continue
            self.restarts.stub_reloaded(model)
            log.warning("model %s reloaded with a new stub", model)
        # The reload's new instances have new regions; the dead ones' are ours to remove.
        remove_dead_regions({stub.region for stub in dead})
        return self.server.stubs()

    def relaunch(self) -> bool:
        """Start the server again and wait until it is ready or gone; False if stopping."""
        try:
            self.server.launch()
        except ServerError as failure:
            log.error("restart failed: %s", failure)
            return True  # the next poll sees no process and backs off again
        deadline = time.monotonic() + self.server.options.startup_timeout_s
        while not self._stopping.wait(0.25):
            if self.server.returncode is not None or self.server.is_ready():
                return True
            if time.monotonic() > deadline:
                log.error("%s was not ready in time; killing it to start over", self.label)
                self.server.stop()
                return True
        return False


def remove_dead_regions(names: set[str]) -> None:
    """Remove the shared-memory regions of stubs that died."""
    removed = remove_regions(names)
    if removed:
        log.warning("removed %d Python-backend region(s) of dead stubs", len(removed))
