"""Choosing the served target: fastest afresh, and a repository's recorded target kept unless
another is clearly faster (README: Targets)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest

from maas.export.selection import Candidate, Throughput, choose, retime, select
from maas.export.targets import get_target

# The README's stated rule, written out here rather than read from the module.
MARGIN = 1.25
ROUNDS = 3


def candidate(name: str, speed: float, status: str = "accepted") -> Candidate:
    """A target as if built, gated and timed: `speed` samples/s at its best batch size.

    Like `evaluate`, only an accepted target is timed.
    """
    if status != "accepted":
        return Candidate(get_target(name), Path(name), status, [f"{status} for this test"])
    throughput = [Throughput(1, speed / 4, 4000 / speed), Throughput(8, speed, 8000 / speed)]
    return Candidate(get_target(name), Path(name), throughput=throughput)


def names(chosen: Candidate | None) -> str | None:
    return None if chosen is None else chosen.target.name


def test_without_a_recorded_target_the_fastest_wins_and_a_near_tie_goes_to_fp32() -> None:
    assert (
        names(choose([candidate("onnxruntime-fp32", 90), candidate("onnxruntime-int8", 100)]))
        == "onnxruntime-int8"
    )
    assert (
        names(choose([candidate("onnxruntime-fp32", 96), candidate("onnxruntime-int8", 100)]))
        == "onnxruntime-fp32"
    )
    assert names(choose([candidate("onnxruntime-fp32", 96, "rejected")])) is None


@pytest.mark.parametrize(
    ("recorded", "challenger", "challenger_speed"),
    [
        # digits_cnn's flip: int8 recorded, fp32 a little faster in this run
        ("onnxruntime-int8", "onnxruntime-fp32", 110.0),
        # the other way round: fp32 recorded, int8 faster but under the margin
        ("onnxruntime-fp32", "onnxruntime-int8", 124.0),
        ("openvino-bf16", "openvino-int8", 0.99 * MARGIN * 100),
    ],
)
def test_a_recorded_target_is_kept_when_the_new_one_wins_by_less_than_the_margin(
    recorded: str, challenger: str, challenger_speed: float
) -> None:
    candidates = [candidate(recorded, 100), candidate(challenger, challenger_speed)]
    assert names(choose(candidates)) == challenger  # afresh it would flip
    assert names(choose(candidates, recorded)) == recorded


@pytest.mark.parametrize("factor", [MARGIN, 1.26, 2.0])
def test_a_recorded_target_gives_way_to_one_at_least_the_margin_faster(factor: float) -> None:
    candidates = [candidate("onnxruntime-fp32", 100), candidate("openvino-int8", 100 * factor)]
    assert names(choose(candidates, "onnxruntime-fp32")) == "openvino-int8"


@pytest.mark.parametrize("status", ["rejected", "skipped"])
def test_a_recorded_target_that_fails_its_gate_or_cannot_run_gives_way_to_the_best_passing(
    status: str,
) -> None:
    candidates = [
        candidate("openvino-int8", 0, status),
        candidate("onnxruntime-fp32", 100),
        candidate("openvino-bf16", 110),  # faster by less than the margin: no matter
        candidate("onnxruntime-int8", 300, "rejected"),  # faster, but failed its gate
    ]
    assert names(choose(candidates, "openvino-int8")) == "openvino-bf16"


def test_a_recorded_target_not_tried_this_time_changes_nothing() -> None:
    candidates = [candidate("onnxruntime-fp32", 100), candidate("openvino-bf16", 110)]
    assert names(choose(candidates, "tensorrt-fp16")) == "openvino-bf16"


class Retimer:
    """Stands in for timing again: records what it was asked to time, sets new speeds."""

    def __init__(self, speeds: dict[str, float]) -> None:
        self.speeds = speeds
        self.calls: list[list[str]] = []

    def __call__(self, pair: list[Candidate]) -> None:
        self.calls.append([c.target.name for c in pair])
        for c in pair:
            c.throughput = [Throughput(8, self.speeds[c.target.name], 1.0)]


def test_a_switch_is_confirmed_by_timing_both_again_and_dropped_when_it_does_not_hold(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kept, challenger = candidate("onnxruntime-fp32", 100), candidate("openvino-int8", 150)
    retimer = Retimer({"onnxruntime-fp32": 100.0, "openvino-int8": 110.0})  # a fluke at first
    with caplog.at_level(logging.INFO, logger="maas.export"):
        chosen = select("m", [kept, challenger], "onnxruntime-fp32", retimer)
    assert chosen is kept
    assert retimer.calls == [["onnxruntime-fp32", "openvino-int8"]]
    assert "m: keeping the recorded onnxruntime-fp32: openvino-int8 is 1.10× its speed" in (
        caplog.text
    )


def test_a_switch_that_holds_when_timed_again_is_made_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kept, challenger = candidate("onnxruntime-fp32", 100), candidate("openvino-int8", 150)
    retimer = Retimer({"onnxruntime-fp32": 100.0, "openvino-int8": 140.0})
    with caplog.at_level(logging.INFO, logger="maas.export"):
        chosen = select("m", [kept, challenger], "onnxruntime-fp32", retimer)
    assert chosen is challenger
    assert "m: replacing the recorded onnxruntime-fp32: openvino-int8 is 1.40× its speed" in (
        caplog.text
    )


def test_no_retiming_when_the_recorded_target_wins_or_there_is_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    retimer = Retimer({})
    close = [candidate("onnxruntime-int8", 100), candidate("onnxruntime-fp32", 110)]
    with caplog.at_level(logging.INFO, logger="maas.export"):
        assert names(select("m", close, "onnxruntime-int8", retimer)) == "onnxruntime-int8"
        assert names(select("m", close, None, retimer)) == "onnxruntime-fp32"
    assert retimer.calls == []
    assert "keeping the recorded onnxruntime-int8: onnxruntime-fp32 is 1.10× its speed" in (
        caplog.text
    )


def test_a_failed_recorded_target_is_reported_and_replaced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    candidates = [candidate("openvino-int8", 0, "rejected"), candidate("onnxruntime-fp32", 100)]
    with caplog.at_level(logging.INFO, logger="maas.export"):
        chosen = select("m", candidates, "openvino-int8", Retimer({}))
    assert names(chosen) == "onnxruntime-fp32"
    assert "m: the recorded openvino-int8 is rejected here" in caplog.text


class SlowRunner:
    """Takes `delays[r]` seconds per call in its r-th timing round; notes when a round starts."""

    CALLS_PER_ROUND = 4  # measure(): one warm-up call and three timed calls, with seconds=0

    def __init__(self, name: str, delays: list[float], order: list[str]) -> None:
        self.name, self.delays, self.order, self.calls = name, delays, order, 0

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.calls % self.CALLS_PER_ROUND == 0:
            self.order.append(self.name)
        time.sleep(self.delays[self.calls // self.CALLS_PER_ROUND])
        self.calls += 1
        return inputs

    def describe(self) -> dict[str, str]:
        return {}


def test_retiming_alternates_the_candidates_and_keeps_the_median_round() -> None:
    order: list[str] = []
    delays = {"onnxruntime-fp32": [0.040, 0.005, 0.010], "openvino-int8": [0.003, 0.030, 0.020]}
    runners = {name: SlowRunner(name, delays[name], order) for name in delays}
    pair = [candidate("onnxruntime-fp32", 1), candidate("openvino-int8", 1)]
    inputs = {"x": np.zeros((2, 3), np.float32)}

    retime(pair, inputs, [1], seconds=0, rounds=ROUNDS, load=lambda c: runners[c.target.name])

    assert order == ["onnxruntime-fp32", "openvino-int8"] * ROUNDS
    for c, median_s in zip(pair, (0.010, 0.020), strict=True):
        (measured,) = c.throughput
        assert measured.batch == 1
        # the middle round's time: not the mean (18.3 and 17.7 ms), the fastest or the slowest
        assert median_s * 1000 <= measured.median_ms < median_s * 1000 + 6
        assert measured.samples_per_s == pytest.approx(1000 / measured.median_ms, rel=1e-9)
