"""Retries: only what the server did not run, with jittered backoff, within a deadline."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace
from typing import ClassVar

import pytest

from maas.base.errors import RateLimitedError, ServerUnavailableError
from maas.clients import InvalidInputError, RetryPolicy, ServerOverloadedError
from maas.clients import retry as retry_module
from maas.clients.retry import retrying, retrying_async


class Flaky:
    """Fails with `error` the first `failures` times, then returns 'ok'."""

    def __init__(self, error: Exception, failures: int) -> None:
        self.error, self.failures, self.calls = error, failures, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def test_unavailable_and_overloaded_are_retried_until_they_succeed() -> None:
    waits: list[float] = []
    policy = RetryPolicy(attempts=5, initial_backoff_s=0.1, max_backoff_s=0.3)
    for error in (ServerUnavailableError("down"), ServerOverloadedError("queue full")):
        call = Flaky(error, failures=3)
        assert retrying(call, policy, sleep=waits.append) == "ok"
        assert call.calls == 4
    assert len(waits) == 6
    assert all(0.0 <= wait <= 0.3 for wait in waits)


def test_what_the_server_rejected_is_never_retried() -> None:
    call = Flaky(InvalidInputError("bad shape"), failures=1)
    with pytest.raises(InvalidInputError):
        retrying(call, RetryPolicy(attempts=5), sleep=lambda _: None)
    assert call.calls == 1


def test_the_last_error_is_raised_when_attempts_run_out() -> None:
    call = Flaky(ServerUnavailableError("down"), failures=10)
    with pytest.raises(ServerUnavailableError, match="down"):
        retrying(call, RetryPolicy(attempts=3), sleep=lambda _: None)
    assert call.calls == 3


class Clock:
    """Time that passes only when `retrying` sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class RecordingRandom(random.Random):
    """The generator `retrying` draws its waits from, seeded, keeping every wait it drew."""

    drawn: ClassVar[list[float]] = []

    def __init__(self) -> None:
        super().__init__(0)
        RecordingRandom.drawn = []

    def uniform(self, a: float, b: float) -> float:
        wait = super().uniform(a, b)
        RecordingRandom.drawn.append(wait)
        return wait


def test_no_retry_starts_past_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(retry_module, "time", clock)
    monkeypatch.setattr(retry_module, "random", SimpleNamespace(Random=RecordingRandom))
    started: list[float] = []

    def call() -> str:
        started.append(clock.now)
        raise ServerUnavailableError("down")

    policy = RetryPolicy(attempts=1000, initial_backoff_s=0.01, max_backoff_s=0.01, deadline_s=0.1)
    with pytest.raises(ServerUnavailableError, match="down"):
        retrying(call, policy, sleep=clock.sleep)
    # The deadline stopped it, not the attempts: about 0.1 / 0.005 tries, nowhere near 1000.
    assert 2 < len(started) < 100
    assert all(start <= policy.deadline_s for start in started)
    # Every wait drawn before a try that ran was slept; the last one drawn would have crossed.
    drawn = RecordingRandom.drawn
    assert len(drawn) == len(started)
    assert started == pytest.approx([sum(drawn[:i]) for i in range(len(started))])
    assert started[-1] + drawn[-1] > policy.deadline_s


def test_backoff_ceilings_grow_exponentially_and_are_capped() -> None:
    policy = RetryPolicy(attempts=8, initial_backoff_s=0.1, max_backoff_s=0.8, multiplier=2.0)
    samples = [list(policy.backoffs(random.Random(seed))) for seed in range(300)]
    ceilings = [max(column) for column in zip(*samples, strict=True)]
    assert ceilings[0] <= 0.1 and ceilings[1] <= 0.2 and ceilings[2] <= 0.4
    assert max(ceilings) <= 0.8 and ceilings[-1] > 0.6  # capped, and jitter spans the range


def test_async_retries_behave_the_same() -> None:
    attempts = 0

    async def call() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ServerUnavailableError("down")
        return "ok"

    policy = RetryPolicy(attempts=4, initial_backoff_s=0.001, max_backoff_s=0.002)
    assert asyncio.run(retrying_async(call, policy)) == "ok"
    assert attempts == 3


@pytest.mark.parametrize(
    "kwargs", [{"attempts": 0}, {"initial_backoff_s": 2.0, "max_backoff_s": 1.0}, {"deadline_s": 0}]
)
def test_impossible_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_a_rate_limit_is_retried_no_sooner_than_the_servers_hint() -> None:
    waits: list[float] = []
    call = Flaky(RateLimitedError("over its rate", retry_after_s=2.0), failures=2)
    policy = RetryPolicy(attempts=5, initial_backoff_s=0.1, max_backoff_s=0.3, deadline_s=30)
    assert retrying(call, policy, sleep=waits.append) == "ok"
    assert waits == [2.0, 2.0]
