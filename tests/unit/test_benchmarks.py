"""The benchmark's pure parts: pacing, Triton statistics, levels, warnings, batching plans."""

from __future__ import annotations

import numpy as np
import pytest

from maas.base.errors import BenchError
from maas.base.served.adapter import ServedModelRunner, ServedSignature
from maas.base.served.batching import pad_and_stack
from maas.base.triton.parameters import AdapterParameters, ModelParameters
from maas.benchmarks.bench import BenchOptions, limit_model, parse_list
from maas.benchmarks.front_overhead import CASES, FrontBenchOptions, FrontResult, report_markdown
from maas.benchmarks.load_test import Level, summarise_window
from maas.benchmarks.pacing import ArrivalSchedule, LoadConfig
from maas.benchmarks.server_stats import breakdown, parse_snapshot


def test_constant_arrivals_are_evenly_spaced_and_each_slot_goes_to_one_caller() -> None:
    schedule = ArrivalSchedule(200.0, "constant")
    slots = [schedule.claim() for _ in range(1000)]
    gaps = np.diff(slots)
    assert np.allclose(gaps, 1 / 200.0)
    assert len(set(slots)) == len(slots)


def test_poisson_arrivals_average_the_offered_rate_with_exponential_gaps() -> None:
    schedule = ArrivalSchedule(100.0, "poisson", seed=3)
    gaps = np.diff([schedule.claim() for _ in range(20001)])
    assert gaps.mean() == pytest.approx(0.01, rel=0.03)
    assert gaps.std() == pytest.approx(0.01, rel=0.05)  # exponential: std equals the mean
    assert not np.allclose(gaps, gaps[0])


def test_restart_moves_the_schedule_to_now_at_the_new_rate() -> None:
    schedule = ArrivalSchedule(10.0, "constant")
    schedule.claim()
    schedule.restart(1000.0)
    first, second = schedule.claim(), schedule.claim()
    assert second - first == pytest.approx(0.001)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (LoadConfig(), "no model"),
        (LoadConfig(model="m", protocol="smtp"), "expected one of http, grpc, naive"),
        (LoadConfig(model="m", arrival="bursty"), "expected one of constant, poisson"),
        (LoadConfig(model="m", protocol="naive", shm=True), "shared memory"),
        (LoadConfig(model="m", rate=-1), "rate must be"),
    ],
)
def test_load_config_names_what_was_wrong(config: LoadConfig, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config.check()


def _stats(name: str, version: str, success: int, executions: int, scale: int) -> dict:
    phase = {"count": success, "ns": success * scale}
    return {
        "name": name,
        "version": version,
        "inference_count": success,
        "execution_count": executions,
        "inference_stats": {
            "success": {"count": success, "ns": success * scale * 4},
            "fail": {"count": 0, "ns": 0},
            "queue": phase,
            "compute_input": phase,
            "compute_infer": {"count": success, "ns": success * scale * 2},
            "compute_output": phase,
        },
    }


def test_breakdown_is_the_per_request_difference_of_two_snapshots() -> None:
    before = parse_snapshot({"model_stats": [_stats("m", "1", 100, 100, 1_000_000)]})
    after = parse_snapshot(
        {
            "model_stats": [
                _stats("m", "1", 300, 150, 1_000_000),  # +200 requests in 50 executions
                _stats("idle", "1", 0, 0, 1),
            ]
        }
    )
    (row,) = breakdown(before, after)
    assert row.model == "m"
    assert row.requests == 200
    assert row.executions == 50
    assert row.avg_batch == pytest.approx(4.0)
    assert row.queue_ms == pytest.approx(1.0)
    assert row.compute_infer_ms == pytest.approx(2.0)
    assert row.request_ms == pytest.approx(4.0)


def test_snapshots_sum_a_models_versions() -> None:
    snapshot = parse_snapshot(
        {"model_stats": [_stats("m", "1", 10, 5, 1), _stats("m", "2", 30, 10, 1)]}
    )
    assert snapshot["m"]["success_count"] == 40
    assert snapshot["m"]["executions"] == 15


def _window(level: Level, requests: int, delayed: int, seconds: float = 10.0):  # type: ignore[no-untyped-def]
    return summarise_window(
        level, seconds, [1.0] * requests, [0.0] * requests, 0, {}, (requests, 0), delayed
    )


def test_an_open_loop_level_that_fell_behind_says_so_with_numbers() -> None:
    result = _window(Level(2, rate=1000.0), requests=4000, delayed=3000)
    warning = result.rate_warning()
    assert "offered 1000/s was not held: 400.0/s sent" in warning
    assert "75% of calls late" in warning


def test_open_loop_levels_that_held_their_rate_and_closed_loop_levels_carry_no_warning() -> None:
    assert _window(Level(8, rate=100.0), requests=1000, delayed=3).rate_warning() == ""
    assert _window(Level(8), requests=10, delayed=0).rate_warning() == ""


def test_percentiles_come_from_every_successful_call() -> None:
    result = summarise_window(Level(1), 2.0, list(range(1, 101)), [], 3, {"E": 3}, (103, 3), 0)
    assert result.requests == 100
    assert result.failures == 3
    assert result.throughput_rps == 50.0
    assert result.p50_ms == pytest.approx(50.5)
    assert result.p99_ms == pytest.approx(99.01)


def test_levels_are_user_counts_or_rates_sharing_one_pool() -> None:
    assert BenchOptions("m", users=(1, 4)).levels() == (Level(1), Level(4))
    assert BenchOptions("m", users=(16,), rates=(50.0, 100.0)).levels() == (
        Level(16, 50.0),
        Level(16, 100.0),
    )
    with pytest.raises(BenchError, match="one --users value"):
        BenchOptions("m", users=(1, 2), rates=(5.0,)).levels()
    with pytest.raises(BenchError, match="--users must be ≥ 1"):
        BenchOptions("m", users=(0,)).levels()
    with pytest.raises(BenchError, match="--rate must be > 0"):
        BenchOptions("m", rates=(0.0,)).levels()


def test_lists_parse_and_bad_ones_are_named() -> None:
    assert parse_list("1, 2,4", int, "--users") == (1, 2, 4)
    assert parse_list("", float, "--rate") == ()
    with pytest.raises(BenchError, match="--users must be a comma-separated list"):
        parse_list("1,two", int, "--users")


def test_grpc_runs_read_statistics_from_the_http_endpoint() -> None:
    options = BenchOptions("m", protocol="grpc", url="h:9001")
    assert options.resolved_stats_url() == "localhost:8000"
    assert BenchOptions("m", protocol="http", url="h:9000").resolved_stats_url() == "h:9000"
    assert BenchOptions("m", protocol="naive", url="h:1").resolved_stats_url() == ""


def test_the_limit_of_an_ensemble_is_its_classifier() -> None:
    assert limit_model("resnet50_image") == "resnet50"
    assert limit_model("minilm_text") == "minilm"
    assert limit_model("digits_cnn") == "digits_cnn"


def test_the_limit_makes_the_runtime_calls_the_adapter_makes() -> None:
    lengths = [3, 30, 4, 29]
    requests = [
        {
            "input_ids": np.arange(1, n + 1, dtype=np.int64)[None],
            "attention_mask": np.ones((1, n), dtype=np.int64),
        }
        for n in lengths
    ]
    calls = runtime_calls(requests, "attention_mask")
    assert sorted(call["input_ids"].shape for call in calls) == [(2, 4), (2, 30)]
    fixed = [{"x": np.full((1, 3), i, dtype=np.float32)} for i in range(5)]
    (joined,) = runtime_calls(fixed, None)
    assert np.array_equal(joined["x"], pad_and_stack([f["x"][0] for f in fixed]))


class RecordingRunner:
    """Echoes the first input's first column and records every call it gets."""

    def __init__(self) -> None:
        self.calls: list[dict[str, np.ndarray]] = []

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls.append(inputs)
        first = next(iter(inputs.values()))
        return {"y": first[:, :1].astype(np.float32)}

    def describe(self) -> dict[str, str]:
        return {"runtime": "recording"}


def runtime_calls(
    requests: list[dict[str, np.ndarray]], padding_mask: str | None
) -> list[dict[str, np.ndarray]]:
    """The runtime calls the serving adapter's core makes for these requests as one batch."""
    runner = RecordingRunner()
    model = ModelParameters(padding_mask=padding_mask)
    parameters = AdapterParameters("model.onnx", "onnxruntime", model)
    signature = ServedSignature(tuple(requests[0]), ("y",), batched=True)
    results = ServedModelRunner(parameters, signature, runner).run(requests)
    for request, result in zip(requests, results, strict=True):  # rows go back to their request
        first = next(iter(request.values()))
        np.testing.assert_array_equal(result["y"], first[:, :1].astype(np.float32))
    return runner.calls


def test_front_cases_are_judged_on_what_they_show() -> None:
    latency = next(case for case in CASES if case.judged_by == "latency")
    throughput = next(case for case in CASES if case.judged_by == "throughput")
    assert {case.protocol for case in CASES if case.judged_by == "latency"} == {"http", "grpc"}
    assert FrontResult(latency, 900.0, 880.0, 0.46, 0.60, 0).goal_met
    assert not FrontResult(latency, 900.0, 700.0, 0.46, 0.50, 0).goal_met, "throughput counts"
    assert not FrontResult(latency, 900.0, 900.0, 0.46, 0.70, 0).goal_met, "so does the p50"
    assert FrontResult(throughput, 300.0, 275.0, 24.0, 30.0, 0).goal_met
    assert not FrontResult(throughput, 300.0, 265.0, 24.0, 24.1, 0).goal_met
    report = report_markdown(
        [
            FrontResult(latency, 900.0, 880.0, 0.46, 0.60, 0),
            FrontResult(throughput, 300.0, 265.0, 24.0, 26.0, 0),
        ],
        FrontBenchOptions(),
        "## Machine",
    )
    assert "p50 added ≤ 0.2 ms and ratio ≥ 0.9: met" in report
    assert "ratio ≥ 0.9: MISSED" in report
    assert "`digits_cnn`, 1 user(s), http" in report


def test_soak_judges_each_model_tail_on_settled_successful_calls() -> None:
    from maas.benchmarks.soak import Call, SoakOptions, SoakResult, record_calls, tail_cells

    result = SoakResult(SoakOptions())
    warm_up = [Call(0.0, "m", "grpc", 900.0)]  # a cold first call must not count
    record_calls(result, warm_up, settled=False)
    calls = [Call(1.0, "m", "grpc", 10.0) for _ in range(97)]
    calls += [Call(2.0, "m", "grpc", 50.0) for _ in range(2)]
    calls.append(Call(2.0, "m", "grpc", 50.0, error="boom"))
    record_calls(result, calls)
    assert result.calls == {"m/grpc": 101}
    assert len(result.latencies["m/grpc"]) == 99  # the failure is counted, not timed
    p50, p99 = result.tail_ratios()["m/grpc"]
    assert p50 == 10.0 and p99 > 30.0
    assert tail_cells((p50, p99))[2].endswith("**over**")
    assert tail_cells((10.0, 25.0)) == ("10.00", "25.00", "2.50")
