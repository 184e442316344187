"""Retrying what is safe to retry: exponential backoff with full jitter, within a deadline.

Only `ServerUnavailableError` is retried — connection refused or reset, HTTP 502/503, gRPC
UNAVAILABLE, and the overload refusal (`ServerOverloadedError`) — and a tenant's rate limit
(`RateLimitedError`, waiting at least the server's hint): in each the server did not run
the request. Invalid input, unknown models, model failures and timeouts are raised at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from maas.base.errors import RateLimitedError, ServerUnavailableError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. `attempts=1` turns retries off."""

    attempts: int = 4  # tries in all, the first included
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 2.0
    multiplier: float = 2.0
    deadline_s: float = 30.0  # no retry starts after this long since the first try

    def __post_init__(self) -> None:
        """Refuse settings that would never try or never stop."""
        if self.attempts < 1:
            raise ValueError(f"attempts must be ≥ 1, got {self.attempts}")
        if self.initial_backoff_s < 0 or self.max_backoff_s < self.initial_backoff_s:
            raise ValueError("backoff must satisfy 0 ≤ initial_backoff_s ≤ max_backoff_s")
        if self.multiplier < 1 or self.deadline_s <= 0:
            raise ValueError("multiplier must be ≥ 1 and deadline_s > 0")

    def backoffs(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits before retries 1, 2, …: full jitter, uniform in [0, capped exponential]."""
        rng = rng or random.Random()
        ceiling = self.initial_backoff_s
        for _ in range(self.attempts - 1):
            yield rng.uniform(0.0, ceiling)
            ceiling = min(self.max_backoff_s, ceiling * self.multiplier)


DEFAULT_RETRY = RetryPolicy()
NO_RETRIES = RetryPolicy(attempts=1)


def retrying(
    call: Callable[[], T], policy: RetryPolicy, sleep: Callable[[float], None] = time.sleep
) -> T:
    """Call until it returns, raises a non-retryable error, or attempts or deadline run out."""
    began = time.monotonic()
    for wait in policy.backoffs():
        try:
            return call()
        except (ServerUnavailableError, RateLimitedError) as refused:
            wait = max(wait, getattr(refused, "retry_after_s", 0.0))
            if time.monotonic() - began + wait > policy.deadline_s:
                raise
        sleep(wait)
    return call()


async def retrying_async(call: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """`retrying` for coroutines."""
    began = time.monotonic()
    for wait in policy.backoffs():
        try:
            return await call()
        except (ServerUnavailableError, RateLimitedError) as refused:
            wait = max(wait, getattr(refused, "retry_after_s", 0.0))
            if time.monotonic() - began + wait > policy.deadline_s:
                raise
        await asyncio.sleep(wait)
    return await call()
