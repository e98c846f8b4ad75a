from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from connectors import ExponentialFullJitter, ResetHeader, RetryAfter, RetryPolicy

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _policy(**kwargs: object) -> RetryPolicy:
    return RetryPolicy(wall_clock=lambda: NOW, rng=random.Random(7), **kwargs)  # type: ignore[arg-type]


def test_retry_after_seconds_wins_over_jitter() -> None:
    response = httpx.Response(429, headers={"Retry-After": "7"})
    assert _policy().next_wait(attempt=1, response=response) == 7.0


def test_retry_after_http_date() -> None:
    when = datetime.fromtimestamp(NOW + 12, tz=UTC)
    response = httpx.Response(503, headers={"Retry-After": format_datetime(when, usegmt=True)})
    assert _policy().next_wait(attempt=1, response=response) == pytest.approx(12.0)


def test_retry_after_in_the_past_means_now_and_garbage_falls_through() -> None:
    past = format_datetime(datetime.fromtimestamp(NOW - 60, tz=UTC), usegmt=True)
    assert (
        _policy().next_wait(attempt=1, response=httpx.Response(503, headers={"Retry-After": past}))
        == 0
    )
    jitter_only = _policy(strategies=(RetryAfter(), ExponentialFullJitter(base=1, cap=1)))
    wait = jitter_only.next_wait(
        attempt=1, response=httpx.Response(503, headers={"Retry-After": "soon"})
    )
    assert 0 <= wait <= 1


def test_waits_are_capped() -> None:
    response = httpx.Response(429, headers={"Retry-After": "3600"})
    assert _policy(max_wait_seconds=60).next_wait(attempt=1, response=response) == 60


@pytest.mark.parametrize(("value", "expected"), [(str(NOW + 30), 30.0), ("12", 12.0)])
def test_reset_header_epoch_or_delay(value: str, expected: float) -> None:
    policy = _policy(strategies=(RetryAfter(), ResetHeader("X-Rate-Limit-Reset")))
    response = httpx.Response(429, headers={"X-Rate-Limit-Reset": value})
    assert policy.next_wait(attempt=1, response=response) == pytest.approx(expected)


def test_full_jitter_bounds() -> None:
    strategy = ExponentialFullJitter(base=0.5, cap=8.0)
    rng = random.Random(1)
    for attempt in range(1, 10):
        ceiling = min(8.0, 0.5 * 2 ** (attempt - 1))
        waits = [
            strategy.wait(attempt=attempt, response=None, rng=rng, now=NOW) for _ in range(300)
        ]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > 0.8 * ceiling  # full jitter spans the whole range …
        assert min(waits) < 0.2 * ceiling  # … down to zero


def test_budget_by_attempts_and_total_time() -> None:
    policy = RetryPolicy(max_attempts=3, max_total_seconds=10)
    assert policy.allows(attempt=2, elapsed_seconds=0, wait_seconds=1)
    assert not policy.allows(attempt=3, elapsed_seconds=0, wait_seconds=1)
    assert not policy.allows(attempt=1, elapsed_seconds=9.5, wait_seconds=1)


def test_fast_policy_shrinks_waits_not_decisions() -> None:
    fast = RetryPolicy.fast(max_attempts=4)
    assert fast.max_attempts == 4
    assert fast.next_wait(
        attempt=1, response=httpx.Response(429, headers={"Retry-After": "7"})
    ) == (pytest.approx(0.007))
