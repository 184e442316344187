"""Windows recorded in several load-generator processes merge into the window of all calls."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maas.benchmarks.load_test import Level, summarise_window
from maas.benchmarks.window import Recorder, Window, merge


def _window(seed: int, size: int, failures: int = 0) -> Window:
    rng = np.random.default_rng(seed)
    latencies = rng.lognormal(1.0, 0.6, size).tolist()  # skewed, like real latencies
    return Window(
        latencies_ms=latencies,
        late_ms=rng.exponential(1.0, size + failures).tolist(),
        failures=failures,
        delayed=seed,
        errors={"E: boom": failures} if failures else {},
        locust_requests=size + failures,
        locust_failures=failures,
        cpu_s=0.5,
        run_calls=size + 10,
    )


def _summary(window: Window):  # type: ignore[no-untyped-def]
    counts = (window.locust_requests, window.locust_failures)
    return summarise_window(
        Level(4, 100.0), 2.0, window.latencies_ms, window.late_ms, window.failures,
        window.errors, counts, window.delayed,
    )  # fmt: skip


def test_merged_percentiles_equal_those_of_the_concatenated_samples_not_their_average() -> None:
    parts = [_window(1, 1500), _window(2, 300, failures=2), _window(3, 7)]
    merged = _summary(merge(parts))
    every = np.concatenate([part.latencies_ms for part in parts])
    for q, value in ((50, merged.p50_ms), (90, merged.p90_ms), (99, merged.p99_ms)):
        assert value == np.percentile(every, q)
    assert merged.mean_ms == pytest.approx(every.mean())
    late = np.concatenate([part.late_ms for part in parts])
    assert merged.late_p99_ms == np.percentile(late, 99)
    averaged = np.mean([_summary(part).p99_ms for part in parts])
    assert merged.p99_ms != pytest.approx(averaged)  # what merging summaries would have given


def test_merged_counts_are_the_sums_of_every_process() -> None:
    parts = [_window(1, 100, failures=3), _window(2, 50, failures=1)]
    merged = merge(parts)
    assert merged.requests == 150
    assert (merged.failures, merged.delayed) == (4, 3)
    assert merged.errors == {"E: boom": 4}
    assert (merged.locust_requests, merged.locust_failures) == (154, 4)
    assert merged.run_calls == 170
    assert merged.cpu_s == pytest.approx(1.0)


def test_a_window_survives_the_trip_as_message_data() -> None:
    window = _window(4, 20, failures=1)
    assert Window.from_message(json.loads(json.dumps(window.as_message()))) == window


def test_the_recorder_keeps_only_calls_inside_the_window_but_counts_every_success() -> None:
    recorder = Recorder()
    recorder.on_request(5.0, None, {})  # warm-up: counted for the run, not for the window
    recorder.restart()
    recorder.on_request(2.0, None, {"late_ms": 3.0, "delayed": True})
    recorder.on_request(9.0, ValueError("bad"), None)
    window = recorder.stop()
    recorder.on_request(4.0, None, {})  # after the window
    assert window.latencies_ms == [2.0]
    assert window.late_ms == [3.0, 0.0]
    assert (window.failures, window.delayed) == (1, 1)
    assert window.errors == {"ValueError: bad": 1}
    assert window.run_calls == 2
    assert recorder.run_calls == 3
