"""What one measurement window recorded, in one load-generator process or merged from many.

Kept free of Locust (which patches the standard library for gevent when imported), so the merge
can be tested anywhere. Workers ship their raw samples, not summaries: the percentiles of a
merged window are those of every call, exactly as if one process had made them all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Window:
    """The calls one window saw: every latency, the open-loop lateness, failures and counts."""

    latencies_ms: list[float] = field(default_factory=list)  # successful calls only
    late_ms: list[float] = field(default_factory=list)  # every call, open loop: behind its slot
    failures: int = 0
    delayed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    locust_requests: int = 0  # Locust's own counters over the window, failures included
    locust_failures: int = 0
    cpu_s: float = 0.0  # CPU time of the load generator(s) over the window
    run_calls: int = 0  # successful calls since the process started, warm-ups included

    @property
    def requests(self) -> int:
        """Successful calls in the window."""
        return len(self.latencies_ms)

    def as_message(self) -> dict[str, Any]:
        """Plain data for a Locust message (msgpack) or JSON."""
        return asdict(self)

    @classmethod
    def from_message(cls, data: Mapping[str, Any]) -> Window:
        """The window a worker sent."""
        return cls(**data)


def merge(windows: Sequence[Window]) -> Window:
    """One window from the same window of several processes: samples joined, counts summed."""
    errors: Counter[str] = Counter()
    for window in windows:
        errors.update(window.errors)
    return Window(
        latencies_ms=[value for window in windows for value in window.latencies_ms],
        late_ms=[value for window in windows for value in window.late_ms],
        failures=sum(window.failures for window in windows),
        delayed=sum(window.delayed for window in windows),
        errors=dict(errors),
        locust_requests=sum(window.locust_requests for window in windows),
        locust_failures=sum(window.locust_failures for window in windows),
        cpu_s=sum(window.cpu_s for window in windows),
        run_calls=sum(window.run_calls for window in windows),
    )


class Recorder:
    """Collects Locust's request events while a window is open; counts successes always."""

    def __init__(self) -> None:
        self.recording = False
        self.window = Window()
        self.run_calls = 0

    def restart(self) -> None:
        """Forget the last window and record a new one."""
        self.window = Window(run_calls=self.run_calls)
        self.recording = True

    def on_request(
        self, response_time: float, exception: BaseException | None, context: Any, **_: Any
    ) -> None:
        """Locust's events.request listener."""
        self.run_calls += exception is None
        if not self.recording:
            return
        context = context or {}
        window = self.window
        window.late_ms.append(float(context.get("late_ms", 0.0)))
        window.delayed += bool(context.get("delayed", False))
        if exception is None:
            window.latencies_ms.append(response_time)
        else:
            window.failures += 1
            message = f"{type(exception).__name__}: {exception}"[:300]
            window.errors[message] = window.errors.get(message, 0) + 1

    def stop(self) -> Window:
        """Stop recording; the window, with the process's successful calls so far."""
        self.recording = False
        self.window.run_calls = self.run_calls
        return self.window
