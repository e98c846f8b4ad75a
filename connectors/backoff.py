"""How long to wait before trying again, and when to stop trying.

Backoff is an ordered list of strategies; the first that yields a wait wins (Airbyte's idea):
the vendor's own `Retry-After`, then a vendor reset header, then exponential backoff with full
jitter. Every wait is capped by `max_wait_seconds`; the whole retry loop is bounded by
`max_attempts` and `max_total_seconds`.

    429 Too Many Requests, Retry-After: 7          → wait 7 s   (RetryAfter)
    503 Service Unavailable (no headers), attempt 3 → wait uniform(0, min(cap, base·2²))

`RetryPolicy.fast()` keeps the same decisions but shrinks every wait to a millisecond scale, the
way stamina's testing switch does, so tests exercise real retry loops quickly.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx


class WaitStrategy(Protocol):
    def wait(
        self, *, attempt: int, response: httpx.Response | None, rng: random.Random, now: float
    ) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to let the next strategy decide.

        `now` is wall-clock epoch seconds (HTTP dates and reset epochs are wall-clock).
        """
        ...


def _header_float(response: httpx.Response | None, name: str) -> float | None:
    if response is None or name not in response.headers:
        return None
    try:
        return float(response.headers[name])
    except ValueError:
        return None


@dataclass(frozen=True)
class RetryAfter:
    """`Retry-After` as delta-seconds (`Retry-After: 7`) or an HTTP-date."""

    def wait(
        self, *, attempt: int, response: httpx.Response | None, rng: random.Random, now: float
    ) -> float | None:
        seconds = _header_float(response, "retry-after")
        if seconds is not None:
            return max(0.0, seconds)
        if response is None or "retry-after" not in response.headers:
            return None
        try:
            when = parsedate_to_datetime(response.headers["retry-after"])
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class ResetHeader:
    """A vendor header saying when the quota refills: epoch seconds or seconds from now.

    Values larger than `epoch_threshold` are read as epoch timestamps (`X-Rate-Limit-Reset:
    1767225600`), smaller ones as a delay (`X-Rate-Limit-Reset: 12`).
    """

    name: str
    epoch_threshold: float = 1_000_000_000.0

    def wait(
        self, *, attempt: int, response: httpx.Response | None, rng: random.Random, now: float
    ) -> float | None:
        value = _header_float(response, self.name)
        if value is None:
            return None
        return max(0.0, value - now if value >= self.epoch_threshold else value)


@dataclass(frozen=True)
class ExponentialFullJitter:
    """uniform(0, min(cap, base · 2^(attempt-1))): spreads many clients' retries apart (AWS)."""

    base: float = 0.5
    cap: float = 30.0

    def wait(
        self, *, attempt: int, response: httpx.Response | None, rng: random.Random, now: float
    ) -> float | None:
        return rng.uniform(0.0, min(self.cap, self.base * 2 ** max(0, attempt - 1)))


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds and waits of the retry loop. `scale` multiplies every wait (see `fast`).

    `clock` (monotonic) measures the time budget; `wall_clock` (epoch) reads HTTP dates. Tests
    that replace `sleep` replace `clock` with it.
    """

    max_attempts: int = 8
    max_total_seconds: float = 300.0
    max_wait_seconds: float = 60.0
    strategies: Sequence[WaitStrategy] = (RetryAfter(), ExponentialFullJitter())
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    scale: float = 1.0

    @classmethod
    def fast(cls, **overrides: object) -> RetryPolicy:
        """The same policy with waits a thousand times shorter — for tests."""
        return replace(cls(), scale=0.001, **overrides)  # type: ignore[arg-type]

    def next_wait(self, *, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to sleep after failed attempt number `attempt` (1-based)."""
        now = self.wall_clock()
        for strategy in self.strategies:
            seconds = strategy.wait(attempt=attempt, response=response, rng=self.rng, now=now)
            if seconds is not None:
                return min(seconds, self.max_wait_seconds) * self.scale
        return 0.0

    def allows(self, *, attempt: int, elapsed_seconds: float, wait_seconds: float) -> bool:
        """Whether another attempt fits after `attempt` attempts and `elapsed_seconds` so far.

        `max_total_seconds` is real time and is not scaled: `fast()` shortens waits, not budgets.
        """
        return (
            attempt < self.max_attempts and elapsed_seconds + wait_seconds <= self.max_total_seconds
        )
